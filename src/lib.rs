//! The composition root of the `cptrain` binary.
//!
//! `inventory` only sees the components of crates that are *named* in source
//! (a crate that is only listed in Cargo.toml is never linked, so its
//! registrations are silently missing; see "The linking pitfall" in
//! framework/README.md and ARCHITECTURE.md). Every plugin crate is therefore
//! mentioned once here, and `main.rs` does `use cptrain_app as _;`, as must
//! any test that builds the context in its own process (the tests in `tests/`
//! run the binary instead).

pub use appctx;
pub use cptrain;
pub use cptrain_plugins;

pub mod launch;
