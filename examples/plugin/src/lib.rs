//! An example plugin for cptrain, written the way a user's crate would be:
//! it depends on `appctx` and `cptrain` only, and registers three components
//! that configuration selects by name, with nothing in the trainer naming
//! them.
//!
//! - [`sequence`]: `data.source = "sequence"`, windows of an arithmetic
//!   sequence of token ids (section `[sequence]`).
//! - [`counted`]: `parallel.cp_comm = "counted"`, the built-in ring attention
//!   (whole-sequence attention at `cp = 1`) with its calls counted, at any cp.
//! - [`tsv`]: a metrics sink writing one tab-separated line per step, on when
//!   `tsv_metrics.path` is set.

pub mod counted;
pub mod sequence;
pub mod tsv;

appctx::module!(pub MODULE, name = "example-plugin");
