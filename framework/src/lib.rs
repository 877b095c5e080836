//! appctx: an application context for Rust.
