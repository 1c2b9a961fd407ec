//! Media types: a body documented only as `*/*` (any type) is read as JSON, what token
//! endpoints answer and what the generated client sends.

use serde_json::Value;

/// Renames each `*/*` content entry to `application/json` where its map has no JSON or form
/// entry of its own, in place.
pub(super) fn any_as_json(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            if let Some(content) = op.get_mut("requestBody").and_then(|b| b.get_mut("content")) {
                rename(content);
            }
            let responses = op.get_mut("responses").and_then(Value::as_object_mut);
            for response in responses.into_iter().flat_map(|r| r.values_mut()) {
                if let Some(content) = response.get_mut("content") {
                    rename(content);
                }
            }
        }
    }
}

fn rename(content: &mut Value) {
    let Some(map) = content.as_object_mut() else {
        return;
    };
    let typed = map.keys().any(|m| {
        let m = m.to_ascii_lowercase();
        m.starts_with("application/json")
            || m.contains("+json")
            || m.starts_with("application/x-www-form-urlencoded")
    });
    if typed {
        return;
    }
    if let Some(any) = map.remove("*/*") {
        map.insert("application/json".to_owned(), any);
    }
}
