//! What the context-parallel strategies share: argument checks and the
//! geometry of one call.

use super::{AttentionError, AttnShape};
use crate::device::{Slice, SliceMut};
use crate::kernels::{BatchedAttention, Mask, Rows};
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

/// The checked buffers of a forward call, in host memory (the CP strategies
/// exchange host memory with their group).
pub(super) struct HostForward<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub out: &'a mut [f32],
    pub lse: &'a mut [f32],
}

impl<'a> HostForward<'a> {
    /// Checks the buffers against `shape` and takes their host slices.
    pub fn new(
        strategy: &'static str,
        shape: AttnShape,
        [q, k, v]: [Slice<'a>; 3],
        out: SliceMut<'a>,
        lse: SliceMut<'a>,
    ) -> Result<Self, AttentionError> {
        shape.check_forward(q, k, v, out.as_slice(), lse.as_slice())?;
        Ok(HostForward {
            q: on_host(strategy, q)?,
            k: on_host(strategy, k)?,
            v: on_host(strategy, v)?,
            out: on_host_mut(strategy, out)?,
            lse: on_host_mut(strategy, lse)?,
        })
    }
}

/// The checked buffers of a backward call, in host memory.
pub(super) struct HostBackward<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub out: &'a [f32],
    pub lse: &'a [f32],
    pub dout: &'a [f32],
    pub dq: &'a mut [f32],
    pub dk: &'a mut [f32],
    pub dv: &'a mut [f32],
}

impl<'a> HostBackward<'a> {
    /// Checks the buffers against `shape` and takes their host slices.
    pub fn new(
        strategy: &'static str,
        shape: AttnShape,
        [q, k, v, out, lse, dout]: [Slice<'a>; 6],
        [dq, dk, dv]: [SliceMut<'a>; 3],
    ) -> Result<Self, AttentionError> {
        let (gq, gk, gv) = (dq.as_slice(), dk.as_slice(), dv.as_slice());
        shape.check_backward(q, k, v, out, lse, dout, gq, gk, gv)?;
        Ok(HostBackward {
            q: on_host(strategy, q)?,
            k: on_host(strategy, k)?,
            v: on_host(strategy, v)?,
            out: on_host(strategy, out)?,
            lse: on_host(strategy, lse)?,
            dout: on_host(strategy, dout)?,
            dq: on_host_mut(strategy, dq)?,
            dk: on_host_mut(strategy, dk)?,
            dv: on_host_mut(strategy, dv)?,
        })
    }
}

fn on_host<'a>(strategy: &'static str, x: Slice<'a>) -> Result<&'a [f32], AttentionError> {
    x.host().ok_or_else(|| device_unsupported(strategy))
}

fn on_host_mut<'a>(
    strategy: &'static str,
    x: SliceMut<'a>,
) -> Result<&'a mut [f32], AttentionError> {
    x.host().ok_or_else(|| device_unsupported(strategy))
}

fn device_unsupported(strategy: &'static str) -> AttentionError {
    AttentionError::Unsupported {
        strategy,
        problem: "context parallelism runs on host memory only so far; \
                  use parallel.cp = 1 on this device"
            .into(),
    }
}
