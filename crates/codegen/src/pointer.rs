//! JSON pointers (RFC 6901): the address of every error, and the language of the token mapping.

/// Escapes one reference token: `~` becomes `~0`, `/` becomes `~1`.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `base` extended by one unescaped segment.
pub fn join(base: &str, segment: &str) -> String {
    format!("{base}/{}", escape(segment))
}

/// The unescaped segments of a pointer, or `None` when it is not a non-empty pointer.
pub fn segments(pointer: &str) -> Option<Vec<String>> {
    let rest = pointer.strip_prefix('/')?;
    rest.split('/')
        .map(|s| {
            // "~" must be followed by 0 or 1.
            let bad = s
                .match_indices('~')
                .any(|(i, _)| !matches!(s.as_bytes().get(i + 1), Some(b'0' | b'1')));
            (!bad).then(|| s.replace("~1", "/").replace("~0", "~"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(join("/paths", "/a~b"), "/paths/~1a~0b");
        assert_eq!(
            segments("/paths/~1a~0b"),
            Some(vec!["paths".to_string(), "/a~b".to_string()])
        );
        assert_eq!(segments("nope"), None);
        assert_eq!(segments("/a~2"), None);
    }
}
