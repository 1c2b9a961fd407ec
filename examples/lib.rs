//! Runnable examples of tokenkit; see `token_manager.rs` (`cargo run --example token_manager`).
