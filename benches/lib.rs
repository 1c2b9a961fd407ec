//! Benchmarks live in `roundtrip.rs` and `manager.rs`; see BENCHMARKS.md at the root.
