//! What generated clients call, and applications need not: the request an operation sends
//! ([`Endpoint`], [`Operation`]), the transport under it ([`Transport`], [`Connection`],
//! [`Response`]), the functions that apply a spec's token mapping ([`mapping`]), and the
//! macros that write a client's builder setters and its [`RefreshClient`](crate::RefreshClient)
//! implementation. Everything with judgement in it (redaction, body caps, error classes, the
//! rules every refresh meets) lives here once, so the generated code stays thin.

mod client_macros;
mod connection;
pub mod endpoint;
pub mod generate;
pub mod http;
pub mod mapping;

pub use client_macros::{
    ClientIdText, choice, issuer, missing_verifier, no_refresh_operation, unknown_variable,
};
pub use endpoint::{Encoding, Endpoint, Operation, TokenPlace};
pub use generate::Generate;
pub use http::{Connection, Response, Transport, Undocumented, fill_server_variables};
