//! What the context-parallel strategies share: argument checks and the
//! geometry of one call.

use super::{AttentionError, AttnShape};
use crate::device::{Buffer, Slice};
use crate::kernels::{BatchedAttention, Kernels, Mask, Rows};
use crate::parallel::{ProcessGroup, ZigzagLayout};

/// The geometry of one CP attention call on this rank.
#[derive(Clone, Copy, Debug)]
pub(super) struct CpCall {
    /// Zigzag chunks of the CP group.
    pub layout: ZigzagLayout,
    /// This rank's index in the CP group.
    pub rank: usize,
    /// (batch, head) slabs.
    pub slabs: usize,
    /// Local rows per slab (`2C`).
    pub len: usize,
    /// Score scale `1/sqrt(head_dim)`.
    pub scale: f32,
}

impl CpCall {
    /// The geometry of a call whose buffers were checked against `shape`;
    /// fails if the local rows do not split into two zigzag halves.
    pub fn new(
        strategy: &'static str,
        group: &dyn ProcessGroup,
        shape: AttnShape,
    ) -> Result<Self, AttentionError> {
        let cp = group.size();
        if cp > 1 && !shape.len.is_multiple_of(2) {
            return Err(AttentionError::Unsupported {
                strategy,
                problem: format!(
                    "each rank holds {} tokens, which do not split into the two zigzag chunks; \
                     model.seq_len must be divisible by 2 * parallel.cp = {}",
                    shape.len,
                    2 * cp
                ),
            });
        }
        Ok(CpCall {
            layout: ZigzagLayout {
                cp,
                chunk: shape.len / 2,
            },
            rank: group.rank(),
            slabs: shape.batch * shape.n_head,
            len: shape.len,
            scale: 1.0 / (shape.head_dim as f32).sqrt(),
        })
    }

    /// All local rows of each slab.
    pub fn all_rows(&self) -> Rows {
        Rows::all(self.len)
    }

    /// Local half `half` (0: chunk `r`, 1: chunk `2P−1−r`) of each slab.
    pub fn half(&self, half: usize) -> Rows {
        let chunk = self.layout.chunk;
        Rows {
            per_slab: self.len,
            start: half * chunk,
            count: chunk,
        }
    }
}

/// One kernel call of all local queries against all local keys: the whole
/// computation when the CP group has a single rank.
pub(super) fn single_rank_kernel(call: &CpCall, head_dim: usize, causal: bool) -> BatchedAttention {
    BatchedAttention {
        slabs: call.slabs,
        head_dim,
        q_rows: call.all_rows(),
        kv_rows: call.all_rows(),
        scale: call.scale,
        mask: if causal { Mask::Causal } else { Mask::None },
    }
}

/// `[a, b]` in one new buffer of `kernels`' device: K and V as one message.
pub(super) fn concat(
    kernels: &dyn Kernels,
    a: Slice<'_>,
    b: Slice<'_>,
) -> Result<Buffer, AttentionError> {
    let mut both = kernels.alloc(a.len() + b.len())?;
    let (first, second) = both.view_mut().split_at(a.len());
    kernels.copy(a, first);
    kernels.copy(b, second);
    Ok(both)
}
