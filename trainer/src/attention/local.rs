//! Attention on one rank holding whole sequences: one causal block call per
//! (batch, head) slab, in parallel over slabs.

use std::sync::Arc;

use super::{Attention, AttentionError, AttnShape, QkvLayout};
use crate::device::{Slice, SliceMut};
use crate::kernels::{BatchedAttention, Kernels, Mask, PackedAttention, QkvProjection, Rows};

/// Causal self-attention with no context parallelism (cp = 1).
#[derive(Clone)]
pub struct LocalAttention {
    kernels: Arc<dyn Kernels>,
}

impl LocalAttention {
    /// Attention that runs the block kernel of `kernels`.
    pub fn new(kernels: Arc<dyn Kernels>) -> Self {
        LocalAttention { kernels }
    }
}

/// The whole-slab causal call for `shape`.
fn causal_call(shape: AttnShape) -> BatchedAttention {
    BatchedAttention {
        slabs: shape.batch * shape.n_head,
        head_dim: shape.head_dim,
        q_rows: Rows::all(shape.len),
        kv_rows: Rows::all(shape.len),
        scale: 1.0 / (shape.head_dim as f32).sqrt(),
        mask: Mask::Causal,
    }
}

/// The packed call for `shape`.
fn packed_call(shape: AttnShape) -> PackedAttention {
    PackedAttention {
        batch: shape.batch,
        len: shape.len,
        n_head: shape.n_head,
        head_dim: shape.head_dim,
        scale: 1.0 / (shape.head_dim as f32).sqrt(),
    }
}

impl Attention for LocalAttention {
    fn name(&self) -> &str {
        "local"
    }

    /// Packed: the model skips splitting q, k, v into heads and merging the
    /// output back.
    fn qkv_layout(&self) -> QkvLayout {
        QkvLayout::Packed
    }

    fn forward_packed(
        &self,
        shape: AttnShape,
        qkv: QkvProjection<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        shape.check_packed_forward(qkv, out.as_slice(), lse.as_slice())?;
        self.kernels
            .attention_forward_packed(&packed_call(shape), qkv, out, lse);
        Ok(())
    }

    fn backward_packed(
        &self,
        shape: AttnShape,
        qkv: QkvProjection<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dqkv: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        shape.check_packed_backward(qkv, out, lse, dout, dqkv.as_slice())?;
        self.kernels
            .attention_backward_packed(&packed_call(shape), qkv, out, lse, dout, dqkv);
        Ok(())
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
        self.kernels
            .attention_forward(&causal_call(shape), q, k, v, out, lse);
        Ok(())
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
        self.kernels.fill(dq.reborrow(), 0.0);
        self.kernels.fill(dk.reborrow(), 0.0);
        self.kernels.fill(dv.reborrow(), 0.0);
        self.kernels
            .attention_backward(&causal_call(shape), q, k, v, out, lse, dout, dq, dk, dv);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{CpuKernels, Threads};

    #[test]
    fn a_wrong_buffer_size_is_an_error_naming_the_buffer() {
        let attn = LocalAttention::new(Arc::new(CpuKernels::new(Threads::single())));
        let shape = AttnShape {
            batch: 1,
            n_head: 2,
            len: 3,
            head_dim: 4,
        };
        let zeros = vec![0.0; shape.qkv_len()];
        let ok = || Slice::from(&zeros);
        let mut out = vec![0.0; shape.qkv_len()];
        let mut lse = vec![0.0; shape.lse_len() + 1];
        let err = attn
            .forward(
                shape,
                ok(),
                ok(),
                ok(),
                (&mut out).into(),
                (&mut lse).into(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("`lse` has 7 elements, expected 6"),
            "{err}"
        );
        let mut lse = vec![0.0; shape.lse_len()];
        attn.forward(
            shape,
            ok(),
            ok(),
            ok(),
            (&mut out).into(),
            (&mut lse).into(),
        )
        .unwrap();
        assert_eq!(attn.name(), "local");
    }
}
