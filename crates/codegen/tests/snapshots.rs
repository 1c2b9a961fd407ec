//! Snapshots of what the generator writes and of what it says about broken specs.
//!
//! Review changes with `cargo insta review` (or set `INSTA_UPDATE=always` and read the diff).

use std::path::{Path, PathBuf};
use tokenkit_codegen::{Provider, emit, load_provider};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn provider(relative: &str) -> Provider {
    load_provider(&workspace().join(relative), relative).unwrap_or_else(|e| panic!("{e}"))
}

fn client_rs(relative: &str) -> String {
    emit::client_rs(&provider(relative)).unwrap()
}

/// The items of a generated file named in `wanted`: a type or function by name, every impl of
/// a type by `impl Type`, or one method by `Type::method`.
fn excerpt(source: &str, wanted: &[&str]) -> String {
    let file = syn::parse_file(source).unwrap();
    let mut items = Vec::new();
    for want in wanted {
        let found: Vec<syn::Item> = file
            .items
            .iter()
            .filter_map(|item| pick(item, want))
            .collect();
        assert!(!found.is_empty(), "no item {want} in the generated file");
        items.extend(found);
    }
    let mut picked = file.clone();
    picked.attrs.clear();
    picked.items = items;
    prettyplease::unparse(&picked)
}

fn pick(item: &syn::Item, want: &str) -> Option<syn::Item> {
    let (ty, method) = match want.split_once("::") {
        Some((ty, m)) => (ty, Some(m)),
        None => (want.strip_prefix("impl ").unwrap_or(want), None),
    };
    let named = |ident: &syn::Ident| ident == want;
    match item {
        syn::Item::Struct(s) if named(&s.ident) => Some(item.clone()),
        syn::Item::Enum(e) if named(&e.ident) => Some(item.clone()),
        syn::Item::Fn(f) if named(&f.sig.ident) => Some(item.clone()),
        syn::Item::Mod(m) if named(&m.ident) => Some(item.clone()),
        syn::Item::Impl(i) => {
            let syn::Type::Path(path) = i.self_ty.as_ref() else {
                return None;
            };
            if path.path.segments.last()?.ident != ty
                || (method.is_none() && !want.starts_with("impl "))
            {
                return None;
            }
            let mut i = i.clone();
            if let Some(m) = method {
                i.items
                    .retain(|it| matches!(it, syn::ImplItem::Fn(f) if f.sig.ident == m));
                if i.items.is_empty() {
                    return None;
                }
            }
            Some(syn::Item::Impl(i))
        }
        _ => None,
    }
}

#[test]
fn every_spec_generates_its_client() {
    for dir in ["specs", "tests/fixtures/specs"] {
        for path in tokenkit_codegen::spec_files(&workspace().join(dir)).unwrap() {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let relative = format!("{dir}/{name}.yaml");
            insta::assert_snapshot!(format!("client_{name}"), client_rs(&relative));
        }
    }
}

#[test]
fn header_parameters_are_fixed_at_build() {
    // Vault.ist: an int32 per-client header and a constant one; Nestbank: query parameters too.
    let vaultist = excerpt(
        &client_rs("specs/vaultist.yaml"),
        &["ClientBuilder::build", "Client::builder"],
    );
    insta::assert_snapshot!(vaultist);
    let nestbank = excerpt(
        &client_rs("tests/fixtures/specs/nestbank.yaml"),
        &["ClientBuilder::build", "Client::renew_session"],
    );
    insta::assert_snapshot!(nestbank);
}

#[test]
fn one_of_request_body() {
    let easyship = excerpt(
        &client_rs("specs/easyship.yaml"),
        &[
            "CreateAccessTokenRequest",
            "RefreshTokenGrant",
            "RefreshTokenGrantGrantType",
            "Client::refresh_request",
        ],
    );
    insta::assert_snapshot!(easyship);
}

#[test]
fn failure_inside_a_success_envelope() {
    let byelabel = excerpt(
        &client_rs("specs/byelabel.yaml"),
        &["impl RefreshTokenResponse", "mapping"],
    );
    insta::assert_snapshot!(byelabel);
    let hesabe = excerpt(
        &client_rs("specs/hesabe.yaml"),
        &["impl TokenRefreshResponse"],
    );
    insta::assert_snapshot!(hesabe);
}

#[test]
fn optional_refresh_token_is_none_when_absent() {
    // The runtime keeps the sent token where the rotation allows it (tokenkit::support::Endpoint).
    let vaultist = excerpt(
        &client_rs("specs/vaultist.yaml"),
        &["TokenResponse", "impl RefreshAccessTokenResponse"],
    );
    assert!(vaultist.contains("refresh_token: mapping::refresh_token(&body),"));
    insta::assert_snapshot!(vaultist);
}

#[test]
fn minimal_spec_generates() {
    let minimal = provider("crates/codegen/tests/fixtures/minimal.yaml");
    assert!(emit::client_rs(&minimal).is_ok());
}

/// A token operation's own `servers` (or its path's) are where it is sent, not the document's
/// first server: the generated client's default base URL and its server variables are theirs.
#[test]
fn operation_and_path_servers_win_over_the_document_s() {
    let op = provider("crates/codegen/tests/fixtures/operation-servers.yaml");
    assert_eq!(op.servers[0].url, "https://auth.example.com");
    let source = emit::client_rs(&op).unwrap();
    assert!(
        source.contains(r#"pub const DEFAULT_BASE_URL: &str = "https://auth.example.com";"#),
        "{source}"
    );
    let path = provider("crates/codegen/tests/fixtures/path-servers.yaml");
    assert_eq!(path.servers[0].url, "https://auth.example.com/{region}");
    assert_eq!(path.server_variables.len(), 1);
    assert_eq!(path.server_variables[0].default.as_deref(), Some("eu"));
}

#[test]
fn security_requirements_passed_over_or_inherited_are_noted() {
    let p = provider("crates/codegen/tests/fixtures/security-alternatives.yaml");
    let names: Vec<&str> = p.config.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["client_id", "client_secret", "api_key"]);
    let notes: Vec<String> = p.notes.iter().map(|n| n.to_string()).collect();
    insta::assert_snapshot!(notes.join("\n"));
}

#[test]
fn broken_specs_are_errors_naming_file_and_pointer() {
    insta::glob!("broken/*.yaml", |path| {
        let name = path.file_name().unwrap().to_string_lossy();
        let display = format!("broken/{name}");
        let errors = load_provider(path, &display).expect_err("a broken spec must not load");
        for error in &errors.0 {
            assert_eq!(error.file, display);
        }
        insta::assert_snapshot!(errors.to_string());
    });
}

#[test]
fn generation_is_deterministic() {
    let root = workspace();
    let first = tokenkit_codegen::generate(&root).unwrap().files;
    let second = tokenkit_codegen::generate(&root).unwrap().files;
    assert_eq!(first, second);
}

#[test]
fn schema_names_never_collide_with_generated_items() {
    let provider = provider("crates/codegen/tests/fixtures/reserved-names.yaml");
    assert!(
        provider.types.contains_key("Client2"),
        "{:?}",
        provider.types.keys()
    );
    let source = emit::client_rs(&provider).unwrap();
    syn::parse_file(&source).unwrap();
}

#[test]
fn form_body_basic_auth_path_parameter_and_status_ranges() {
    let rfc = client_rs("tests/fixtures/specs/rfc6749.yaml");
    assert!(rfc.contains("support::Encoding::Form"));
    assert!(rfc.contains("endpoint.basic_auth("));
    insta::assert_snapshot!(excerpt(
        &rfc,
        &["ClientBuilder::build", "Client::token", "TokenOutcome"]
    ));
}

#[test]
fn all_of_recursion_and_discriminated_one_of() {
    let shapes = client_rs("tests/fixtures/specs/shapes.yaml");
    insta::assert_snapshot!(excerpt(
        &shapes,
        &["Refresh", "Session", "Tokens", "TokensLifetime", "Problem"]
    ));
}
