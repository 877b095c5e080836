use crate::model::ModelConfigError;

/// A model shape, rank or buffer that tensor parallelism cannot split or join.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TpError {
    /// `parallel.tp` is zero.
    #[error("parallel.tp = 0: the tensor-parallel size must be at least 1")]
    ZeroTp,
    /// The model shape itself is invalid.
    #[error(transparent)]
    Model(#[from] ModelConfigError),
    /// The heads do not split evenly over the TP group.
    #[error(
        "model.n_head = {n_head} is not divisible by parallel.tp = {tp}: each tensor-parallel \
         rank owns n_head / tp whole attention heads (and as many slices of the MLP); choose \
         parallel.tp among the divisors of {n_head}: {divisors}"
    )]
    HeadsDoNotDivide {
        /// `model.n_head`.
        n_head: usize,
        /// `parallel.tp`.
        tp: usize,
        /// The divisors of `n_head` up to 1024, comma-separated.
        divisors: String,
    },
    /// The padded vocabulary does not fit in a `usize`.
    #[error(
        "model.vocab_size = {vocab_size} padded to a multiple of model.vocab_padding × \
         parallel.tp = {vocab_padding} × {tp} does not fit in memory; lower vocab_padding"
    )]
    VocabOverflow {
        /// `model.vocab_size`.
        vocab_size: usize,
        /// `model.vocab_padding`.
        vocab_padding: usize,
        /// `parallel.tp`.
        tp: usize,
    },
    /// A TP rank outside the group.
    #[error("tensor-parallel rank {rank} does not exist: parallel.tp = {tp} numbers them 0..{tp}")]
    Rank {
        /// The rank asked for.
        rank: usize,
        /// `parallel.tp`.
        tp: usize,
    },
    /// A tensor name with no partition rule (a tensor added to the layout
    /// without saying how tensor parallelism splits it).
    #[error(
        "no tensor-parallel rule for the tensor {name}; add it to Partition::of \
         (tensor_parallel/partition.rs)"
    )]
    UnknownTensor {
        /// The tensor's Hugging Face name.
        name: String,
    },
    /// A flat buffer of the wrong length.
    #[error("{what} has {found} values, but its layout has {expected}")]
    Length {
        /// Which buffer (e.g. "the full buffer", "the buffer of TP rank 1").
        what: String,
        /// The layout's length.
        expected: usize,
        /// The buffer's length.
        found: usize,
    },
    /// `gather` needs exactly one buffer per TP rank.
    #[error(
        "gathering needs one local buffer per tensor-parallel rank: parallel.tp = {tp}, got {found}"
    )]
    RankCount {
        /// `parallel.tp`.
        tp: usize,
        /// Buffers given.
        found: usize,
    },
    /// A model shard was given a group that is not its TP group.
    #[error(
        "tensor-parallel rank {rank} of parallel.tp = {tp} was given the group {group}, which is \
         not a TP group holding it at that rank"
    )]
    Group {
        /// `parallel.tp`.
        tp: usize,
        /// The TP rank asked for.
        rank: usize,
        /// The group given.
        group: String,
    },
}

/// `Ok` when a buffer of `found` values fits a layout of `expected`; else
/// [`TpError::Length`] naming the buffer `what()`.
pub(super) fn check_len(
    what: impl FnOnce() -> String,
    expected: usize,
    found: usize,
) -> Result<(), TpError> {
    if expected == found {
        Ok(())
    } else {
        Err(TpError::Length {
            what: what(),
            expected,
            found,
        })
    }
}
