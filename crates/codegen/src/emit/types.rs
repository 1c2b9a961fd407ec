//! Tokens for the generated types: structs, enums and `oneOf` enums.

use super::docs;
use crate::names::{ident, pascal, snake};
use crate::types::{Def, Field, Ty, TypeDef};
use proc_macro2::TokenStream;
use quote::quote;

/// The Rust type for `ty`.
pub fn ty(ty: &Ty) -> TokenStream {
    match ty {
        Ty::String => quote!(String),
        Ty::Secret => quote!(tokenkit::Secret),
        Ty::Bool => quote!(bool),
        Ty::I32 => quote!(i32),
        Ty::I64 => quote!(i64),
        Ty::F64 => quote!(f64),
        Ty::Any => quote!(serde_json::Value),
        Ty::Named(name) => {
            let name = ident(name);
            quote!(#name)
        }
        Ty::Array(item) => {
            let item = self::ty(item);
            quote!(Vec<#item>)
        }
        Ty::Map => quote!(serde_json::Map<String, serde_json::Value>),
    }
}

/// The field's type, `Option` included.
pub fn field_ty(field: &Field) -> TokenStream {
    let mut inner = ty(&field.ty);
    if field.boxed {
        inner = quote!(Box<#inner>);
    }
    if field.optional {
        quote!(Option<#inner>)
    } else {
        inner
    }
}

/// The Rust field name of a property.
pub fn field_ident(json: &str) -> proc_macro2::Ident {
    ident(&snake(json))
}

/// The Rust variant name of a string enum value.
pub fn enum_variant(value: &str) -> proc_macro2::Ident {
    ident(&pascal(value))
}

/// Every type definition.
pub fn definitions(types: &[&TypeDef]) -> TokenStream {
    types.iter().map(|t| definition(t)).collect()
}

fn definition(def: &TypeDef) -> TokenStream {
    let name = ident(&def.name);
    let doc = docs(
        def.doc
            .as_deref()
            .unwrap_or(&format!("The `{}` schema.", def.name)),
    );
    match &def.def {
        Def::Struct {
            fields,
            deny_unknown,
        } => {
            let deny = deny_unknown.then(|| quote!(#[serde(deny_unknown_fields)]));
            let fields = fields.iter().map(|f| {
                let field = field_ident(&f.json);
                let json = &f.json;
                let rename = (field.to_string().trim_start_matches("r#") != json.as_str())
                    .then(|| quote!(#[serde(rename = #json)]));
                let skip = f
                    .optional
                    .then(|| quote!(#[serde(default, skip_serializing_if = "Option::is_none")]));
                let doc = docs(
                    f.doc
                        .as_deref()
                        .unwrap_or(&format!("The `{json}` property.")),
                );
                let ty = field_ty(f);
                quote! {
                    #doc
                    #rename
                    #skip
                    pub #field: #ty,
                }
            });
            quote! {
                #doc
                #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
                #deny
                pub struct #name {
                    #(#fields)*
                }
            }
        }
        Def::Enum { values } => {
            let variants = values.iter().map(|v| {
                let variant = enum_variant(v);
                let doc = docs(&format!("`{v}`."));
                quote! {
                    #doc
                    #[serde(rename = #v)]
                    #variant,
                }
            });
            let arms = values.iter().map(|v| {
                let variant = enum_variant(v);
                quote!(Self::#variant => #v,)
            });
            // A single-value enum is a constant: its one value is also its default.
            let single = values.len() == 1;
            let default = single.then(|| quote!(Default,));
            let default_attr = single.then(|| quote!(#[default]));
            let variants: Vec<TokenStream> = variants.collect();
            let first = variants.first().map(|v| quote!(#default_attr #v));
            let rest = variants.iter().skip(1);
            quote! {
                #doc
                #[derive(Clone, Copy, Debug, #default PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
                pub enum #name {
                    #first
                    #(#rest)*
                }

                impl #name {
                    /// The value as the spec writes it.
                    pub fn as_str(self) -> &'static str {
                        match self {
                            #(#arms)*
                        }
                    }
                }

                impl std::fmt::Display for #name {
                    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(self.as_str())
                    }
                }
            }
        }
        Def::OneOf { variants } => {
            let variants = variants.iter().map(|(v, t)| {
                let variant = ident(v);
                let inner = ty(t);
                let doc = docs(&format!("The `{v}` variant."));
                quote! {
                    #doc
                    #variant(#inner),
                }
            });
            quote! {
                #doc
                ///
                /// Decoding tries the variants in order and keeps the first that matches.
                #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
                #[serde(untagged)]
                pub enum #name {
                    #(#variants)*
                }
            }
        }
    }
}
