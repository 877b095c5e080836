//! Moving between the token-major `[batch, len, n_head·head_dim]` layout of
//! the linear layers and the head-major `[batch, n_head, len, head_dim]`
//! layout of attention.

/// Sizes of one layout change.
#[derive(Clone, Copy, Debug)]
pub struct HeadLayout {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence.
    pub len: usize,
    /// Heads.
    pub n_head: usize,
    /// Width of a head.
    pub head_dim: usize,
}

impl HeadLayout {
    /// Calls `f(token-major offset, head-major offset)` for every head row.
    fn for_each_row(&self, row_stride: usize, col0: usize, mut f: impl FnMut(usize, usize)) {
        let hd = self.head_dim;
        for b in 0..self.batch {
            for h in 0..self.n_head {
                for t in 0..self.len {
                    let token_major = (b * self.len + t) * row_stride + col0 + h * hd;
                    let head_major = ((b * self.n_head + h) * self.len + t) * hd;
                    f(token_major, head_major);
                }
            }
        }
    }

    /// `dst[b, h, t, :] = src[b, t, col0 + h·hd ..]` where `src` rows are
    /// `row_stride` wide.
    pub fn split_heads(&self, src: &[f32], row_stride: usize, col0: usize, dst: &mut [f32]) {
        let hd = self.head_dim;
        self.for_each_row(row_stride, col0, |s, d| {
            dst[d..d + hd].copy_from_slice(&src[s..s + hd])
        });
    }

    /// The inverse of [`HeadLayout::split_heads`].
    pub fn merge_heads(&self, src: &[f32], dst: &mut [f32], row_stride: usize, col0: usize) {
        let hd = self.head_dim;
        self.for_each_row(row_stride, col0, |d, s| {
            dst[d..d + hd].copy_from_slice(&src[s..s + hd])
        });
    }
}
