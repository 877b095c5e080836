//! The `local` backend: ranks are threads of this process.

mod device;
mod group;
mod world;

pub use group::LocalGroup;
pub use world::{AbortCause, LocalWorld};

#[cfg(test)]
mod tests;
