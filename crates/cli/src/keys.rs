//! The `--key ID=FILE` and `--to-key ID=FILE` options: an [`EncryptedStore`]'s keys, each
//! read from a file so that no key appears in the process list or the shell's history.
//!
//! [`EncryptedStore`]: tokenkit::EncryptedStore

use tokenkit::EncryptionKey;

/// The store's keys, the move target's keys, and the arguments left.
pub(crate) type Options<'a> = (Vec<EncryptionKey>, Vec<EncryptionKey>, Vec<&'a str>);

/// Splits the key options off `args`.
pub(crate) fn options<'a>(args: &[&'a str]) -> Result<Options<'a>, String> {
    let (mut keys, mut to_keys, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let list = match *arg {
            "--key" => &mut keys,
            "--to-key" => &mut to_keys,
            _ => {
                rest.push(*arg);
                continue;
            }
        };
        let value = args.next().ok_or_else(|| format!("{arg} needs ID=FILE"))?;
        list.push(key(value)?);
    }
    Ok((keys, to_keys, rest))
}

/// One `ID=FILE`: the file holds the key's 32 bytes, raw or as 64 hex digits.
fn key(value: &str) -> Result<EncryptionKey, String> {
    let (id, path) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not ID=FILE"))?;
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read the key file {path:?}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let hex = text.trim();
    let bytes = if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| format!("the key file {path:?} is not hex"))?
    } else {
        bytes
    };
    // The error names the id and the length, never the bytes.
    EncryptionKey::new(id, &bytes).map_err(|e| format!("key {id:?} in {path:?}: {e}"))
}
