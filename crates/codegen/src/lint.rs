//! Checks a spec can pass beyond generating: every documented body has an example, and every
//! example matches its schema. The mock serves these examples and the conformance suite
//! expects them, so a wrong example is a wrong test.

use crate::error::SpecError;
use crate::model::{Provider, ResponseCase, TokenOperation};
use crate::pointer::join;
use crate::validate::validate;
use serde_json::Value;

/// Every problem of a built provider, in spec order.
pub fn lint(provider: &Provider) -> Vec<SpecError> {
    let mut out = Vec::new();
    for answering in &provider.operations {
        lint_operation(provider, answering, &mut out);
    }
    out
}

/// The examples of one operation: its body, parameters and responses.
fn lint_operation(provider: &Provider, answering: &TokenOperation, out: &mut Vec<SpecError>) {
    let spec = &provider.spec_json;
    let op = &answering.operation;
    let out = &mut *out;

    if let Some(body) = &op.body {
        let body_at = body.schema_pointer.trim_end_matches("/schema").to_owned();
        if let Some(schema) = spec.pointer(&body.schema_pointer) {
            check_examples(provider, &body_at, schema, out);
        }
    }
    for param in &op.params {
        let at = param.schema_pointer.trim_end_matches("/schema");
        if let (Some(example), Some(schema)) = (
            spec.pointer(&join(at, "example")),
            spec.pointer(&param.schema_pointer),
        ) {
            check(provider, &join(at, "example"), schema, example, out);
        }
    }
    for case in &op.responses {
        lint_response(provider, case, out);
    }
    lint_success_examples(provider, answering, out);
}

fn lint_response(provider: &Provider, case: &ResponseCase, out: &mut Vec<SpecError>) {
    let Some((media, _)) = &case.body else { return };
    let media_at = join(&join(&case.pointer, "content"), media);
    let Some(schema) = provider.spec_json.pointer(&join(&media_at, "schema")) else {
        return;
    };
    if case.examples.is_empty() {
        out.push(
            SpecError::new(
                &provider.file,
                &media_at,
                format!("documented response {} has no example", case.key.spec_key()),
            )
            .hint("add `example:` or `examples:`; the mock serves it and the conformance suite checks it"),
        );
    }
    check_examples(provider, &media_at, schema, out);
}

/// Checks `example` and every `examples/*/value` of a media type (or parameter) object.
fn check_examples(provider: &Provider, at: &str, schema: &Value, out: &mut Vec<SpecError>) {
    let Some(holder) = provider.spec_json.pointer(at) else {
        return;
    };
    if let Some(example) = holder.get("example") {
        check(provider, &join(at, "example"), schema, example, out);
    }
    if let Some(examples) = holder.get("examples").and_then(Value::as_object) {
        for (name, example) in examples {
            if let Some(value) = example.get("value") {
                check(
                    provider,
                    &join(&join(&join(at, "examples"), name), "value"),
                    schema,
                    value,
                    out,
                );
            }
        }
    }
}

fn check(provider: &Provider, at: &str, schema: &Value, example: &Value, out: &mut Vec<SpecError>) {
    for violation in validate(&provider.spec_json, schema, example) {
        out.push(
            SpecError::new(
                &provider.file,
                at,
                format!("the example does not match its schema: {violation}"),
            )
            .hint("fix the example or the schema; the mock serves examples as they are"),
        );
    }
}

/// Every success example that is not a documented failure carries the access token.
fn lint_success_examples(
    provider: &Provider,
    answering: &TokenOperation,
    out: &mut Vec<SpecError>,
) {
    let success = &answering.success;
    let Some(case) = answering
        .operation
        .responses
        .iter()
        .find(|r| r.status == success.status)
    else {
        return;
    };
    let is_failure = |body: &Value| {
        answering
            .failures
            .iter()
            .filter_map(|f| f.when.as_ref())
            .any(|when| when.matches(body))
    };
    let successes: Vec<&(String, Value)> = case
        .examples
        .iter()
        .filter(|(_, b)| !is_failure(b))
        .collect();
    if case.body.is_some() && !case.examples.is_empty() && successes.is_empty() {
        out.push(
            SpecError::new(
                &provider.file,
                &case.pointer,
                "every example of the success status is a failure",
            )
            .hint("add an example of a successful refresh"),
        );
    }
    for (name, body) in successes {
        // A value of the wrong type is the schema check's to report: one message per cause.
        if body.pointer(&success.access_token.pointer).is_none() {
            out.push(SpecError::new(
                &provider.file,
                &case.pointer,
                format!(
                    "success example {name:?} has no access token at {}",
                    success.access_token.pointer
                ),
            ));
        }
    }
}
