//! Typed views of the flat parameter (or gradient) buffer.

use super::{ModelConfig, ParamLayout};
use crate::device::{Slice, SliceMut};

/// Tensors of one transformer block, in layout order.
#[derive(Debug)]
pub struct BlockParams<T> {
    /// `ln_1.weight` `[C]`.
    pub ln1_w: T,
    /// `ln_1.bias` `[C]`.
    pub ln1_b: T,
    /// `attn.c_attn.weight` `[C, 3C]`.
    pub qkv_w: T,
    /// `attn.c_attn.bias` `[3C]`.
    pub qkv_b: T,
    /// `attn.c_proj.weight` `[C, C]`.
    pub attn_proj_w: T,
    /// `attn.c_proj.bias` `[C]`.
    pub attn_proj_b: T,
    /// `ln_2.weight` `[C]`.
    pub ln2_w: T,
    /// `ln_2.bias` `[C]`.
    pub ln2_b: T,
    /// `mlp.c_fc.weight` `[C, 4C]`.
    pub fc_w: T,
    /// `mlp.c_fc.bias` `[4C]`.
    pub fc_b: T,
    /// `mlp.c_proj.weight` `[4C, C]`.
    pub mlp_proj_w: T,
    /// `mlp.c_proj.bias` `[C]`.
    pub mlp_proj_b: T,
}

/// The whole model's tensors.
#[derive(Debug)]
pub struct GptParams<T> {
    /// `wte` `[V, C]`, also the output head.
    pub wte: T,
    /// `wpe` `[seq_len, C]`.
    pub wpe: T,
    /// The transformer blocks.
    pub blocks: Vec<BlockParams<T>>,
    /// `ln_f.weight` `[C]`.
    pub lnf_w: T,
    /// `ln_f.bias` `[C]`.
    pub lnf_b: T,
}

/// Assembles the views from the tensors in layout order.
fn assemble<T>(n_layer: usize, pieces: Vec<T>) -> GptParams<T> {
    let mut it = pieces.into_iter();
    let mut next = || it.next().expect("the layout has every tensor");
    let wte = next();
    let wpe = next();
    let blocks = (0..n_layer)
        .map(|_| BlockParams {
            ln1_w: next(),
            ln1_b: next(),
            qkv_w: next(),
            qkv_b: next(),
            attn_proj_w: next(),
            attn_proj_b: next(),
            ln2_w: next(),
            ln2_b: next(),
            fc_w: next(),
            fc_b: next(),
            mlp_proj_w: next(),
            mlp_proj_b: next(),
        })
        .collect();
    GptParams {
        wte,
        wpe,
        blocks,
        lnf_w: next(),
        lnf_b: next(),
    }
}

/// A view of a flat buffer that can be cut into consecutive pieces: host
/// slices and device views alike.
pub trait Splits: Sized {
    /// Number of values.
    fn len(&self) -> usize;
    /// Whether there are no values.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The first `mid` values and the rest.
    fn split_at(self, mid: usize) -> (Self, Self);
}

impl Splits for &[f32] {
    fn len(&self) -> usize {
        <[f32]>::len(self)
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        <[f32]>::split_at(self, mid)
    }
}

impl Splits for Slice<'_> {
    fn len(&self) -> usize {
        Slice::len(self)
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        Slice::split_at(self, mid)
    }
}

impl Splits for SliceMut<'_> {
    fn len(&self) -> usize {
        SliceMut::len(self)
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        SliceMut::split_at(self, mid)
    }
}

impl<T: Splits> GptParams<T> {
    /// Views of `buf` (parameters or gradients), which must hold exactly
    /// [`ParamLayout::gpt2`]`(cfg).len()` values.
    pub fn new(cfg: &ModelConfig, buf: T) -> Self {
        Self::in_layout(&ParamLayout::gpt2(cfg), cfg.n_layer, buf)
    }

    /// Views of `buf` in `layout`: GPT-2's tensors in its order, with any
    /// shapes (a tensor-parallel rank's local layout), `n_layer` blocks.
    pub fn in_layout(layout: &ParamLayout, n_layer: usize, buf: T) -> Self {
        let mut rest = Some(buf);
        let pieces = layout
            .specs()
            .iter()
            .map(|spec| {
                let (head, tail) = rest
                    .take()
                    .expect("one tail per piece")
                    .split_at(spec.numel());
                rest = Some(tail);
                head
            })
            .collect();
        let rest = rest.expect("the last tail");
        assert!(rest.is_empty(), "parameter buffer longer than the layout");
        assemble(n_layer, pieces)
    }
}
