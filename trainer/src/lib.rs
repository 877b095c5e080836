//! cptrain: context-parallel training of GPT-style transformers.
//!
//! The numeric core (`kernels`, `model`, `attention`) knows nothing of the
//! application context; the components that wire it together live beside it.

pub mod attention;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod components;
pub mod data;
pub mod device;
pub mod embed;
mod huge_pages;
pub mod inference;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod parallel;
pub mod plot;
mod regular_file;
pub mod tensor_parallel;
pub mod tokenizer;
pub mod train;

pub use huge_pages::{HUGE_PAGES_VAR, HugePageAlloc, HugePages, HugePagesError};
