//! cptrain: context-parallel training of GPT-style transformers.
//!
//! The numeric core (`kernels`, `model`, `attention`) knows nothing of the
//! application context; the components that wire it together live beside it.

pub mod attention;
pub mod kernels;
pub mod model;
pub mod parallel;
