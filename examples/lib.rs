//! Runnable examples of tokenkit; see `token_manager.rs` (`cargo run --example token_manager`)
//! and `first_token.rs` (`cargo run --example first_token`).
