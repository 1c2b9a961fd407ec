//! The generated `tests/suite` crate: one `suite!` line per provider, so a new spec joins the
//! conformance suite with no Rust written by hand.

use super::{crate_ident, crate_name, example_literal, format_file, header, inner_docs};
use crate::{OutputFile, Provider, SUITE_DIR, Source};
use quote::quote;
use std::path::Path;

/// `Cargo.toml`, `src/lib.rs` and `src/suite.rs` of the suite crate.
pub fn files(providers: &[(Source, Provider)]) -> Result<Vec<OutputFile>, String> {
    let dir = Path::new(SUITE_DIR);
    let origin = "every spec";
    let mut deps = String::new();
    for (source, provider) in providers {
        deps.push_str(&format!(
            "{} = {{ path = \"../../{}/{}\" }}\n",
            crate_name(provider),
            source.clients,
            provider.name
        ));
    }
    let cargo = format!(
        "{header}[package]\n\
         name = \"tokenkit-suite\"\n\
         description = \"The conformance suite, instantiated for every generated client.\"\n\
         version = \"0.1.0\"\n\
         edition.workspace = true\n\
         license.workspace = true\n\
         rust-version.workspace = true\n\
         publish.workspace = true\n\
         \n\
         [dev-dependencies]\n\
         tokenkit.workspace = true\n\
         tokenkit-conformance = {{ path = \"../conformance\" }}\n\
         tokio.workspace = true\n\
         {deps}\
         \n\
         [lints]\n\
         workspace = true\n",
        header = header(origin).replace("// ", "# "),
    );

    let lines = providers.iter().map(|(_, provider)| {
        // Escaped: a provider may be named like a Rust keyword (`box.yaml`).
        let name = crate::names::ident(&provider.name.replace('-', "_"));
        let krate = crate_ident(provider);
        let spec = &provider.file;
        let args = provider
            .config
            .iter()
            .filter(|c| c.required)
            .map(|c| example_literal(c, &quote!(#krate)))
            .chain(
                provider
                    .signs_assertions()
                    .then(|| quote!(tokenkit_conformance::signing_key())),
            );
        let setters = provider.config.iter().filter(|c| !c.required).map(|c| {
            let setter = crate::names::ident(&c.name);
            let value = example_literal(c, &quote!(#krate));
            quote!(.#setter(#value))
        });
        let doc = super::docs(&format!("The conformance cases for `{spec}`."));
        let name_text = &provider.name;
        let grants = provider.all_grants().map(|g| {
            let (module, kind) = match g.kind {
                crate::extension::GrantKind::ClientCredentials => {
                    (quote!(client_credentials), quote!(ClientCredentials))
                }
                crate::extension::GrantKind::AuthorizationCode => {
                    (quote!(authorization_code), quote!(AuthorizationCode))
                }
                crate::extension::GrantKind::Password => (quote!(password), quote!(Password)),
                crate::extension::GrantKind::JwtBearer => (quote!(jwt_bearer), quote!(JwtBearer)),
            };
            quote!(#module = #kind)
        });
        let grants: Vec<_> = grants.collect();
        let grants = match (&provider.refresh, grants.is_empty()) {
            (_, true) => None,
            (Some(_), false) => Some(quote!(; grants: #(#grants),*)),
            (None, false) => Some(quote!(; only grants: #(#grants),*)),
        };
        quote! {
            #doc
            mod #name {
                /// The client, pointed at the mock.
                fn build(
                    base_url: &str,
                    http: tokenkit::HttpConfig,
                ) -> Result<Box<dyn tokenkit::RefreshClient>, tokenkit::BuildError> {
                    let client = #krate::Client::builder(#(#args),*)
                        #(#setters)*
                        .base_url(base_url)
                        .http_config(http)
                        .build()?;
                    Ok(Box::new(client))
                }

                tokenkit_conformance::suite!(#name_text, #spec, build #grants);
            }
        }
    });
    let suite = format_file(
        origin,
        quote! {
            //! The conformance suite, one module of cases per provider.
            #(#lines)*
        },
    )?;
    let lib_doc = inner_docs(
        "The conformance suite, instantiated for every generated client by `cargo xtask gen`.\n\n\
         Run it with `cargo test -p tokenkit-suite`: each provider is a module, each case a test.",
    );
    let lib = format_file(
        origin,
        quote! {
            #lib_doc

            #[cfg(test)]
            #[rustfmt::skip]
            mod suite;
        },
    )?;
    Ok(vec![
        OutputFile {
            path: dir.join("Cargo.toml"),
            contents: cargo,
        },
        OutputFile {
            path: dir.join("src/lib.rs"),
            contents: lib,
        },
        OutputFile {
            path: dir.join("src/suite.rs"),
            contents: suite,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider named like a Rust keyword still gives a suite that parses.
    #[test]
    fn a_provider_named_like_a_keyword() {
        let dir = std::env::temp_dir().join(format!("tokenkit-suite-kw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/fredi.yaml");
        let mut providers = Vec::new();
        for name in ["box", "type", "self", "fn-2"] {
            let path = dir.join(format!("{name}.yaml"));
            std::fs::copy(&spec, &path).unwrap();
            let provider = crate::load_provider(&path, &format!("specs/{name}.yaml")).unwrap();
            providers.push((crate::SOURCES[0], provider));
        }
        for file in files(&providers).unwrap() {
            if file.path.extension().is_some_and(|e| e == "rs") {
                syn::parse_file(&file.contents)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.path.display()));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
