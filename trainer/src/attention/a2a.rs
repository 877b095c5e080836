//! `a2a`: Ulysses attention (docs/cp-attention.md §6).
//!
//! An all-to-all turns "every head, local tokens" into "n_head/P heads, the
//! whole sequence": rank `t` receives head group `t` (heads
//! `[t·H/P, (t+1)·H/P)`) of every rank's tokens and puts the zigzag chunks
//! back in natural order. Ordinary single-rank attention runs on that, and a
//! second all-to-all returns out and lse. The backward sends q, k, v, out,
//! dout and lse the same way (the trait keeps no state between forward and
//! backward), runs the single-rank backward, and returns dq, dk, dv. Each
//! direction is one all-to-all carrying all its tensors: two per pass.
//! Needs `n_head % P == 0`.

use std::sync::Arc;

use super::cp_support::{CpCall, single_rank_kernel};
use super::{Attention, AttentionError, AttnShape};
use crate::device::{Buffer, Slice, SliceMut};
use crate::kernels::{Kernels, Runs};
use crate::parallel::{ProcessGroup, ZigzagLayout};

/// Ulysses all-to-all attention over a CP group (`parallel.cp_comm = "a2a"`).
///
/// Computes, and reshuffles heads, on the rank's device; the all-to-all
/// moves device memory as the backend can
/// ([`ProcessGroup::all_to_all_view`]).
pub struct UlyssesAttention {
    group: Arc<dyn ProcessGroup>,
    kernels: Arc<dyn Kernels>,
    causal: bool,
}

/// How one call's tensors are cut into head groups.
#[derive(Clone, Copy, Debug)]
struct HeadSplit {
    layout: ZigzagLayout,
    batch: usize,
    n_head: usize,
    /// Heads per rank after the exchange (`n_head / P`).
    group_heads: usize,
}

impl HeadSplit {
    /// Elements of one rank's head group of a `[batch, n_head, len, width]` tensor.
    fn block(&self, width: usize) -> usize {
        self.batch * self.group_heads * self.layout.local_len() * width
    }

    /// The runs from the received blocks (`block` values from each rank, a
    /// tensor of `width` at `at` in each) to that tensor over the whole
    /// sequence in natural order, `[batch, n_head/P, S, width]`.
    fn sequence_runs(&self, width: usize, block: usize, at: usize) -> Runs {
        let mut runs = Runs::new(self.layout.chunk * width);
        for u in 0..self.layout.cp {
            let from_rank = self.layout.runs(u, self.slabs(), width);
            runs.extend_shifted(&from_rank, u * block + at, 0);
        }
        runs
    }

    /// Slabs of the gathered layout `[batch, group_heads, S, width]`.
    fn slabs(&self) -> usize {
        self.batch * self.group_heads
    }

    /// The runs from every head group `t` of a `[batch, n_head, len,
    /// width]` tensor to the packed `[batch, n_head/P, len, width]` block at
    /// `t · block + at` of the message (a run per batch row and group);
    /// [`Runs::inverse`] puts the blocks back.
    fn head_runs(&self, width: usize, block: usize, at: usize) -> Runs {
        let run = self.group_heads * self.layout.local_len() * width;
        let mut runs = Runs::new(run);
        for t in 0..self.layout.cp {
            for b in 0..self.batch {
                let from =
                    (b * self.n_head + t * self.group_heads) * self.layout.local_len() * width;
                runs.push(from, t * block + at + b * run);
            }
        }
        runs
    }
}

impl UlyssesAttention {
    /// Ulysses attention over `group` (the rank's CP group), computing with
    /// `kernels`; `causal = false` gives bidirectional attention.
    pub fn new(group: Arc<dyn ProcessGroup>, kernels: Arc<dyn Kernels>, causal: bool) -> Self {
        UlyssesAttention {
            group,
            kernels,
            causal,
        }
    }

    fn split(&self, call: &CpCall, shape: AttnShape) -> Result<HeadSplit, AttentionError> {
        let p = call.layout.cp;
        if !shape.n_head.is_multiple_of(p) {
            return Err(AttentionError::Unsupported {
                strategy: "a2a",
                problem: format!(
                    "model.n_head = {} is not divisible by parallel.cp = {p}: Ulysses gives each \
                     rank n_head/cp whole heads; choose a cp that divides n_head, or \
                     parallel.cp_comm = \"p2p\" or \"all_gather\"",
                    shape.n_head
                ),
            });
        }
        Ok(HeadSplit {
            layout: call.layout,
            batch: shape.batch,
            n_head: shape.n_head,
            group_heads: shape.n_head / p,
        })
    }

    /// Every rank's `[batch, n_head, len, width]` tensors → this rank's head
    /// group over the whole sequence, `[batch, n_head/P, S, width]` each, on
    /// the device.
    fn to_sequence(
        &self,
        split: &HeadSplit,
        tensors: &[(Slice<'_>, usize)],
    ) -> Result<Vec<Buffer>, AttentionError> {
        let full_len = |w| split.slabs() * split.layout.seq_len() * w;
        let mut full = (tensors.iter())
            .map(|&(_, w)| self.kernels.alloc(full_len(w)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outputs: Vec<_> = full.iter_mut().map(Buffer::view_mut).collect();
        let pack = |w, block, at| split.head_runs(w, block, at);
        let unpack = |w, block, at| split.sequence_runs(w, block, at);
        self.exchange(split, tensors, pack, unpack, &mut outputs)?;
        Ok(full)
    }

    /// The inverse of [`UlyssesAttention::to_sequence`]: writes every
    /// gathered `(tensor, width)` back into the matching local output.
    fn to_heads(
        &self,
        split: &HeadSplit,
        tensors: &[(Slice<'_>, usize)],
        outputs: &mut [SliceMut<'_>],
    ) -> Result<(), AttentionError> {
        let pack = |w, block, at| split.sequence_runs(w, block, at).inverse();
        let unpack = |w, block, at| split.head_runs(w, block, at).inverse();
        self.exchange(split, tensors, pack, unpack, outputs)
    }

    /// One all-to-all carrying every `(tensor, width)`: each tensor is
    /// packed into the message at its offset `at` of every rank's `block`
    /// with `pack(width, block, at)`, and unpacked from the received message
    /// into its output with `unpack(width, block, at)`.
    fn exchange(
        &self,
        split: &HeadSplit,
        tensors: &[(Slice<'_>, usize)],
        pack: impl Fn(usize, usize, usize) -> Runs,
        unpack: impl Fn(usize, usize, usize) -> Runs,
        outputs: &mut [SliceMut<'_>],
    ) -> Result<(), AttentionError> {
        let kernels = &*self.kernels;
        let block: usize = tensors.iter().map(|&(_, w)| split.block(w)).sum();
        let p = split.layout.cp;
        let mut send = kernels.alloc(p * block)?;
        let mut at = 0;
        for &(x, w) in tensors {
            kernels.copy_runs(x, send.view_mut(), &pack(w, block, at));
            at += split.block(w);
        }
        let mut recv = kernels.alloc(p * block)?;
        (self.group).all_to_all_view(kernels, send.view(), recv.view_mut())?;
        let mut at = 0;
        for (&(_, w), out) in tensors.iter().zip(outputs.iter_mut()) {
            kernels.copy_runs(recv.view(), out.reborrow(), &unpack(w, block, at));
            at += split.block(w);
        }
        Ok(())
    }

    /// Call geometry of the gathered layout: `n_head/P` heads, all `S` rows.
    fn gathered_call(split: &HeadSplit, call: &CpCall) -> CpCall {
        let seq_len = split.layout.seq_len();
        let layout = ZigzagLayout {
            cp: 1,
            chunk: seq_len / 2,
        };
        CpCall {
            layout,
            rank: 0,
            slabs: split.slabs(),
            len: seq_len,
            scale: call.scale,
        }
    }
}

impl Attention for UlyssesAttention {
    fn name(&self) -> &str {
        "a2a"
    }

    fn forward(
        &self,
        shape: AttnShape,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        shape.check_forward(q, k, v, out.as_slice(), lse.as_slice())?;
        let call = CpCall::new("a2a", &*self.group, shape)?;
        let (d, kernels) = (shape.head_dim, &*self.kernels);
        if call.layout.cp == 1 {
            let kernel = single_rank_kernel(&call, d, self.causal);
            kernels.attention_forward(&kernel, q, k, v, out, lse);
            return Ok(());
        }
        let split = self.split(&call, shape)?;
        let full = self.to_sequence(&split, &[(q, d), (k, d), (v, d)])?;
        let [q_f, k_f, v_f] = &full[..] else {
            unreachable!("to_sequence returns one tensor per input")
        };
        let gathered = Self::gathered_call(&split, &call);
        let mut out_full = kernels.alloc(q_f.len())?;
        let mut lse_full = kernels.alloc(split.slabs() * gathered.len)?;
        let kernel = single_rank_kernel(&gathered, d, self.causal);
        let (o, l) = (out_full.view_mut(), lse_full.view_mut());
        kernels.attention_forward(&kernel, q_f.view(), k_f.view(), v_f.view(), o, l);
        let results = [(out_full.view(), d), (lse_full.view(), 1)];
        self.to_heads(&split, &results, &mut [out, lse])
    }

    fn backward(
        &self,
        shape: AttnShape,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        mut dq: SliceMut<'_>,
        mut dk: SliceMut<'_>,
        mut dv: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        let grads = [dq.as_slice(), dk.as_slice(), dv.as_slice()];
        shape.check_backward(q, k, v, out, lse, dout, grads[0], grads[1], grads[2])?;
        let call = CpCall::new("a2a", &*self.group, shape)?;
        let (d, kernels) = (shape.head_dim, &*self.kernels);
        if call.layout.cp == 1 {
            kernels.fill(dq.reborrow(), 0.0);
            kernels.fill(dk.reborrow(), 0.0);
            kernels.fill(dv.reborrow(), 0.0);
            let kernel = single_rank_kernel(&call, d, self.causal);
            kernels.attention_backward(&kernel, q, k, v, out, lse, dout, dq, dk, dv);
            return Ok(());
        }
        let split = self.split(&call, shape)?;
        let inputs = [(q, d), (k, d), (v, d), (out, d), (dout, d), (lse, 1)];
        let full = self.to_sequence(&split, &inputs)?;
        let [q_f, k_f, v_f, out_f, dout_f, lse_f] = &full[..] else {
            unreachable!("to_sequence returns one tensor per input")
        };
        let gathered = Self::gathered_call(&split, &call);
        let mut dq_f = kernels.alloc(q_f.len())?;
        let mut dk_f = kernels.alloc(q_f.len())?;
        let mut dv_f = kernels.alloc(q_f.len())?;
        let kernel = single_rank_kernel(&gathered, d, self.causal);
        kernels.attention_backward(
            &kernel,
            q_f.view(),
            k_f.view(),
            v_f.view(),
            out_f.view(),
            lse_f.view(),
            dout_f.view(),
            dq_f.view_mut(),
            dk_f.view_mut(),
            dv_f.view_mut(),
        );
        let results = [(dq_f.view(), d), (dk_f.view(), d), (dv_f.view(), d)];
        self.to_heads(&split, &results, &mut [dq, dk, dv])
    }
}
