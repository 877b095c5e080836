//! Causal self-attention as the model sees it: one call per layer on the
//! rank-local tokens. A single-rank implementation calls the block kernel once;
//! the context-parallel strategies (`p2p`, `all_gather`, `a2a`) implement the
//! same trait and talk to their CP group inside.

mod a2a;
mod all_gather;
mod builtin;
mod cp_support;
#[cfg(test)]
mod cp_tests;
mod local;
mod p2p;
#[cfg(test)]
mod p2p_batches;

pub use a2a::UlyssesAttention;
pub use all_gather::AllGatherAttention;
pub use builtin::BuiltinStrategy;
pub use local::LocalAttention;
pub use p2p::RingAttention;

use crate::device::{Slice, SliceMut};
use crate::kernels::QkvProjection;

/// How a strategy takes its queries, keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkvLayout {
    /// Separate head-major `q`, `k`, `v` `[batch, n_head, len, head_dim]`
    /// ([`Attention::forward`], [`Attention::backward`]).
    HeadMajor,
    /// The token-major output of the qkv projection as it is, without its
    /// bias ([`QkvProjection`], [`Attention::forward_packed`],
    /// [`Attention::backward_packed`]).
    Packed,
}

/// Shape of one attention call on this rank.
///
/// Head-major calls: `q`, `k`, `v`, `out` and their gradients are
/// `[batch, n_head, len, head_dim]` row-major; `lse` is `[batch, n_head,
/// len]` (natural log-sum-exp of the scaled scores, f32). Packed calls:
/// `qkv` is `[batch, len, 3·n_head·head_dim]` (all queries, then all keys,
/// then all values of a token, heads in order), `out` and `dout` are
/// `[batch, len, n_head·head_dim]`, `lse` is `[batch, len, n_head]`, and
/// `dq`, `dk`, `dv` stay head-major. `len` is the number of tokens this rank
/// holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    /// Sequences in the micro-batch.
    pub batch: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Tokens of each sequence held by this rank.
    pub len: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl AttnShape {
    /// Elements of `q`, `k`, `v` or `out`.
    pub fn qkv_len(&self) -> usize {
        self.batch * self.n_head * self.len * self.head_dim
    }

    /// Elements of `lse`.
    pub fn lse_len(&self) -> usize {
        self.batch * self.n_head * self.len
    }

    /// Checks the buffers of an [`Attention::forward`] call.
    pub fn check_forward(
        &self,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
    ) -> Result<(), AttentionError> {
        let tensors = [("q", q), ("k", k), ("v", v), ("out", out)];
        self.check(&tensors, lse)
    }

    /// Checks the buffers of an [`Attention::backward`] call.
    #[allow(clippy::too_many_arguments)]
    pub fn check_backward(
        &self,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dq: Slice<'_>,
        dk: Slice<'_>,
        dv: Slice<'_>,
    ) -> Result<(), AttentionError> {
        let tensors = [
            ("q", q),
            ("k", k),
            ("v", v),
            ("out", out),
            ("dout", dout),
            ("dq", dq),
            ("dk", dk),
            ("dv", dv),
        ];
        self.check(&tensors, lse)
    }

    /// Checks the buffers of an [`Attention::forward_packed`] call.
    pub fn check_packed_forward(
        &self,
        qkv: QkvProjection<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
    ) -> Result<(), AttentionError> {
        self.check_packed_qkv(qkv)?;
        self.check(&[("out", out)], lse)
    }

    /// Checks the buffers of an [`Attention::backward_packed`] call.
    pub fn check_packed_backward(
        &self,
        qkv: QkvProjection<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dqkv: Slice<'_>,
    ) -> Result<(), AttentionError> {
        self.check_packed_qkv(qkv)?;
        self.check_len("dqkv", dqkv, 3 * self.qkv_len())?;
        self.check(&[("out", out), ("dout", dout)], lse)
    }

    fn check_packed_qkv(&self, qkv: QkvProjection<'_>) -> Result<(), AttentionError> {
        self.check_len("qkv", qkv.data, 3 * self.qkv_len())?;
        self.check_len("qkv bias", qkv.bias, 3 * self.n_head * self.head_dim)
    }

    fn check_len(
        &self,
        buffer: &'static str,
        data: Slice<'_>,
        expected: usize,
    ) -> Result<(), AttentionError> {
        if data.len() == expected {
            Ok(())
        } else {
            Err(AttentionError::Shape {
                buffer,
                actual: data.len(),
                expected,
                shape: *self,
            })
        }
    }

    /// `tensors` must hold [`Self::qkv_len`] elements each, `lse` [`Self::lse_len`].
    fn check(
        &self,
        tensors: &[(&'static str, Slice<'_>)],
        lse: Slice<'_>,
    ) -> Result<(), AttentionError> {
        let expected = |name| {
            if name == "lse" {
                self.lse_len()
            } else {
                self.qkv_len()
            }
        };
        for &(buffer, data) in tensors.iter().chain(&[("lse", lse)]) {
            self.check_len(buffer, data, expected(buffer))?;
        }
        Ok(())
    }
}

/// Why an attention call failed.
#[derive(Debug, thiserror::Error)]
pub enum AttentionError {
    /// A buffer does not match the declared shape.
    #[error("attention buffer `{buffer}` has {actual} elements, expected {expected} for {shape:?}")]
    Shape {
        /// Which argument.
        buffer: &'static str,
        /// Elements passed.
        actual: usize,
        /// Elements the shape needs.
        expected: usize,
        /// The declared shape.
        shape: AttnShape,
    },
    /// A collective of the context-parallel group failed.
    #[error("context-parallel attention: {0}")]
    Comm(#[from] crate::parallel::CommError),
    /// The device failed (memory, a lost device).
    #[error("attention: {0}")]
    Device(#[from] crate::device::DeviceError),
    /// The strategy cannot run this shape on this group.
    #[error("context-parallel attention `{strategy}`: {problem}")]
    Unsupported {
        /// The strategy (`p2p`, `all_gather`, `a2a`).
        strategy: &'static str,
        /// What does not fit, and what to choose instead.
        problem: String,
    },
}

/// The error of a packed call to a strategy that takes head-major q, k, v.
fn packed_unsupported(strategy: &str) -> AttentionError {
    AttentionError::Unsupported {
        strategy: "head-major",
        problem: format!("`{strategy}` does not take packed qkv"),
    }
}

/// Causal self-attention over the tokens this rank holds.
///
/// Implementations keep whatever per-rank state they need (process group,
/// scratch buffers) and may be shared between layers.
pub trait Attention: Send + Sync {
    /// Short name for reports (`local`, `p2p`, `all_gather`, `a2a`).
    fn name(&self) -> &str;

    /// Which pair of methods the model calls: [`QkvLayout::HeadMajor`]
    /// (`forward`/`backward`, every strategy) unless the strategy reads the
    /// packed qkv projection itself.
    fn qkv_layout(&self) -> QkvLayout {
        QkvLayout::HeadMajor
    }

    /// [`Attention::forward`] on the packed layout (see [`AttnShape`]), the
    /// projection's bias added as it is read ([`QkvProjection`]); only
    /// strategies whose [`Attention::qkv_layout`] is [`QkvLayout::Packed`]
    /// implement it.
    fn forward_packed(
        &self,
        shape: AttnShape,
        qkv: QkvProjection<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        let _ = (shape, qkv, out, lse);
        Err(packed_unsupported(self.name()))
    }

    /// [`Attention::backward`] on the packed layout: `dout` token-major,
    /// and `dqkv`, the gradient of `qkv` in its layout, overwritten.
    fn backward_packed(
        &self,
        shape: AttnShape,
        qkv: QkvProjection<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dqkv: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        let _ = (shape, qkv, out, lse, dout, dqkv);
        Err(packed_unsupported(self.name()))
    }

    /// Computes `out` and `lse` for this rank's queries against every key
    /// that precedes them in the global sequence.
    fn forward(
        &self,
        shape: AttnShape,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) -> Result<(), AttentionError>;

    /// Given the forward's `out` and `lse` and the upstream gradient `dout`,
    /// overwrites `dq`, `dk`, `dv` with this rank's gradients.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        shape: AttnShape,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dq: SliceMut<'_>,
        dk: SliceMut<'_>,
        dv: SliceMut<'_>,
    ) -> Result<(), AttentionError>;
}
