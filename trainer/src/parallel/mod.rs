//! The parallel runtime: rank grid, process groups and sequence sharding.

mod zigzag;

pub use zigzag::{ZigzagError, zigzag_ranges};
