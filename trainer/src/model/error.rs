//! Why a forward or backward pass refused its inputs.

use crate::attention::AttentionError;
use crate::device::DeviceError;
use crate::kernels::TargetOutOfRange;
use crate::parallel::CommError;

/// An input the model cannot use; nothing was computed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A token id at or above `model.vocab_size`.
    #[error(
        "token {token} at position {position} of the micro-batch is not below \
         model.vocab_size = {vocab}; the data and the model disagree on the vocabulary"
    )]
    Token {
        /// Index into the micro-batch's tokens.
        position: usize,
        /// The id.
        token: u32,
        /// `model.vocab_size`.
        vocab: usize,
    },
    /// A target id that is neither a token nor the ignore marker.
    #[error("{0}; the data and the model disagree on the vocabulary")]
    Target(#[from] TargetOutOfRange),
    /// A position with no row in `wpe`.
    #[error("position {position} (index {index}) is not below model.seq_len = {seq_len}")]
    Position {
        /// Index into `positions`.
        index: usize,
        /// The position.
        position: usize,
        /// `model.seq_len`.
        seq_len: usize,
    },
    /// A buffer whose size does not match the model or the activations.
    #[error("`{what}` has {actual} elements, expected {expected}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements passed.
        actual: usize,
    },
    /// The attention layer failed (e.g. a collective of the CP group).
    #[error(transparent)]
    Attention(#[from] AttentionError),
    /// The device failed (memory, a lost device).
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A collective of the tensor-parallel group failed (boxed: errors stay
    /// small).
    #[error("tensor-parallel layers: {0}")]
    Comm(Box<CommError>),
}

impl From<CommError> for ModelError {
    fn from(error: CommError) -> Self {
        ModelError::Comm(Box::new(error))
    }
}
