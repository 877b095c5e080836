//! Tensor parallelism's bookkeeping (Megatron-LM's scheme for GPT-2): which
//! pieces of each Hugging Face tensor a TP rank holds, its local flat
//! layout, moving whole buffers between the full layout and the ranks'
//! (`split` / `gather`: parameters, gradients, AdamW moments), the global
//! norm's per-rank sums, and the parameters per rank.
//!
//! | tensor | partition | rank `t` of `tp` holds |
//! |---|---|---|
//! | `attn.c_attn` `[C, 3C]`, bias `[3C]` | column-parallel by heads | the columns of heads `t·H/tp..(t+1)·H/tp` in each of the q, k, v bands |
//! | `mlp.c_fc` `[C, 4C]`, bias `[4C]` | column-parallel | hidden units `t·4C/tp..(t+1)·4C/tp` |
//! | `attn.c_proj` `[C, C]`, `mlp.c_proj` `[4C, C]` | row-parallel | the input rows of its heads / hidden units |
//! | `wte` `[V, C]` | vocabulary-parallel | the ids of [`VocabSplit::rows`] |
//! | `wpe`, LayerNorms, `c_proj` biases | replicated | everything |
//!
//! The row-parallel layers' biases are added once, after the TP reduction
//! (all-reduce, or reduce-scatter with sequence parallelism): every rank
//! adds the whole bias to its reduced output, as Megatron-LM's
//! `RowParallelLinear` does. The design and a worked example are in
//! `docs/tensor-parallel.md`. Plain Rust: no appctx, no device.

mod error;
mod memory;
mod model;
mod norm;
mod partition;
mod reshard;
mod shard;
mod sharding;
mod slices;
mod vocab;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod worked_example;

pub use error::TpError;
pub use partition::{Bands, Partition};
pub use shard::{RankShard, TensorShard};
pub use sharding::TpSharding;
pub use slices::RankSlices;
pub use vocab::VocabSplit;
