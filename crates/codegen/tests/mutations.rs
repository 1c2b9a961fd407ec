//! Mutated specs never crash the generator: the five real specs, with nodes dropped, retyped,
//! duplicated and renamed, either generate a client that parses as Rust or return errors.
//!
//! CI runs proptest's default 256 cases; a dedicated run takes thousands:
//! `PROPTEST_CASES=5000 cargo test --release -p tokenkit-codegen --test mutations`.

use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::OnceLock;
use tokenkit_codegen::{emit, lint, model, read};

fn specs() -> &'static [Value] {
    static SPECS: OnceLock<Vec<Value>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
        tokenkit_codegen::spec_files(&dir)
            .unwrap()
            .iter()
            .map(|path| read::load(path).unwrap().json)
            .collect()
    })
}

/// Every node's pointer, depth first.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(v, tokenkit_codegen::pointer::join(&at, k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn parent_and_key(pointer: &str) -> Option<(&str, String)> {
    let (parent, key) = pointer.rsplit_once('/')?;
    Some((parent, key.replace("~1", "/").replace("~0", "~")))
}

/// Applies one mutation of kind `kind` to the node picked by `node`.
fn mutate(doc: &mut Value, node: u32, kind: u8, seed: u32) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let target = all[node as usize % all.len()].clone();
    let replacements = [
        json!("x"),
        json!(7),
        json!(-1.5),
        json!(true),
        json!(null),
        json!([]),
        json!({}),
        json!("/nope"),
        json!("#/components/schemas/Nope"),
    ];
    match kind % 5 {
        // Drop the node.
        0 => {
            if let Some((parent, key)) = parent_and_key(&target) {
                match doc.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.shift_remove(&key);
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(i) = key.parse::<usize>()
                            && i < items.len()
                        {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Retype it.
        1 => {
            if let Some(slot) = doc.pointer_mut(&target) {
                *slot = replacements[seed as usize % replacements.len()].clone();
            }
        }
        // Duplicate it beside itself.
        2 => {
            let copy = doc.pointer(&target).cloned();
            if let (Some(copy), Some((parent, key))) = (copy, parent_and_key(&target)) {
                match doc.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.insert(format!("{key}_copy"), copy);
                    }
                    Some(Value::Array(items)) => items.push(copy),
                    _ => {}
                }
            }
        }
        // Rename its key.
        3 => {
            if let Some((parent, key)) = parent_and_key(&target)
                && let Some(Value::Object(map)) = doc.pointer_mut(parent)
                && let Some(v) = map.shift_remove(&key)
            {
                map.insert(format!("{key}{}", seed % 3), v);
            }
        }
        // Put another node's value here.
        _ => {
            let other = all[seed as usize % all.len()].clone();
            if let Some(value) = doc.pointer(&other).cloned()
                && let Some(slot) = doc.pointer_mut(&target)
            {
                *slot = value;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_specs_are_errors_or_valid_clients(
        which in 0usize..5,
        mutations in prop::collection::vec((any::<u32>(), any::<u8>(), any::<u32>()), 1..4),
    ) {
        let mut doc = specs()[which].clone();
        for (node, kind, seed) in mutations {
            mutate(&mut doc, node, kind, seed);
        }
        let text = serde_json::to_string(&doc).unwrap();
        let outcome = read::parse("mutant", "mutant.yaml", &text)
            .map_err(|e| vec![e])
            .and_then(|s| model::build(&s).map_err(|e| e.0));
        match outcome {
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for error in &errors {
                    prop_assert_eq!(&error.file, "mutant.yaml");
                    prop_assert!(error.pointer.is_empty() || error.pointer.starts_with('/'), "{}", error);
                }
            }
            Ok(provider) => {
                let _ = lint::lint(&provider);
                let client = emit::client_rs(&provider).map_err(TestCaseError::fail)?;
                prop_assert!(syn::parse_file(&client).is_ok());
                prop_assert!(emit::lib_rs(&provider).is_ok());
            }
        }
    }
}
