//! Moving between the token-major `[batch, len, width]` layout of the linear
//! layers and the head-major `[batch, n_head, len, head_dim]` layout of
//! attention, where a head-major tensor is the `n_head·head_dim` columns of
//! the token-major rows that start at column `col0`.

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
    /// Elements of one head's `[len, head_dim]` block.
    pub fn head_block(&self) -> usize {
        self.len * self.head_dim
    }

    /// Checks that the `width`-wide `token_major` buffer holds the
    /// head-major tensor at `col0`, which `head_major` has room for.
    pub(crate) fn check(&self, token_major: &[f32], width: usize, col0: usize, head_major: &[f32]) {
        let heads_width = self.n_head * self.head_dim;
        assert!(col0 + heads_width <= width, "head columns exceed the row");
        assert_eq!(token_major.len(), self.batch * self.len * width);
        assert_eq!(
            head_major.len(),
            self.batch * self.n_head * self.head_block()
        );
    }
}

/// `dst[b, h, t, :] = src[b, t, col0 + h·hd ..]` for the head blocks `dst`
/// holds, the first being block `first_block` (= `b·n_head + h`).
pub fn split_heads(
    layout: &HeadLayout,
    src: &[f32],
    width: usize,
    col0: usize,
    first_block: usize,
    dst: &mut [f32],
) {
    let hd = layout.head_dim;
    for (i, block) in dst.chunks_exact_mut(layout.head_block()).enumerate() {
        let (b, h) = (
            (first_block + i) / layout.n_head,
            (first_block + i) % layout.n_head,
        );
        gather_rows(
            &src[b * layout.len * width + col0 + h * hd..],
            hd,
            width,
            block,
        );
    }
}

/// The inverse of [`split_heads`] for the sequences `dst` holds, the first
/// being sequence `first_seq`: `dst[b, t, col0 + h·hd ..] = src[b, h, t, :]`.
pub fn merge_heads(
    layout: &HeadLayout,
    src: &[f32],
    dst: &mut [f32],
    width: usize,
    col0: usize,
    first_seq: usize,
) {
    let hd = layout.head_dim;
    let seq_block = layout.n_head * layout.head_block();
    for (i, seq) in dst.chunks_exact_mut(layout.len * width).enumerate() {
        let heads =
            src[(first_seq + i) * seq_block..][..seq_block].chunks_exact(layout.head_block());
        for (h, head) in heads.enumerate() {
            scatter_rows(head, hd, width, &mut seq[col0 + h * hd..]);
        }
    }
}

/// Copies rows of `width` values that start `stride` apart in `src` into
/// the contiguous `dst` (as many rows as `dst` holds).
pub(super) fn gather_rows(src: &[f32], width: usize, stride: usize, dst: &mut [f32]) {
    for (i, (d, s)) in dst
        .chunks_exact_mut(width)
        .zip(src.chunks(stride))
        .enumerate()
    {
        prefetch_row(src, (i + PREFETCH_ROWS) * stride, width);
        copy(d, &s[..width]);
    }
}

/// [`gather_rows`] adding `bias` (`width` values) to every row.
pub(super) fn gather_rows_plus(
    src: &[f32],
    width: usize,
    stride: usize,
    bias: &[f32],
    dst: &mut [f32],
) {
    assert_eq!(bias.len(), width);
    for (i, (d, s)) in dst
        .chunks_exact_mut(width)
        .zip(src.chunks(stride))
        .enumerate()
    {
        prefetch_row(src, (i + PREFETCH_ROWS) * stride, width);
        for ((d, &s), &b) in d.iter_mut().zip(&s[..width]).zip(bias) {
            *d = s + b;
        }
    }
}

/// How many rows ahead the strided gathers ask for their source: a row is
/// a few cache lines a kilobyte or more from the last, which the hardware
/// prefetchers do not follow, so each one otherwise waits on memory.
const PREFETCH_ROWS: usize = 16;

/// Hints that `src[start..start + width]` will be read soon (nothing when
/// it is out of range, or off x86-64).
#[inline(always)]
fn prefetch_row(src: &[f32], start: usize, width: usize) {
    #[cfg(target_arch = "x86_64")]
    if start + width <= src.len() {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for line in (start..start + width).step_by(16) {
            // SAFETY: `line` indexes inside `src`; a prefetch never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(src.as_ptr().add(line).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, start, width);
}

/// The inverse of [`gather_rows`]: row `i` of the contiguous `src` goes to
/// `dst[i·stride ..][..width]`.
pub(super) fn scatter_rows(src: &[f32], width: usize, stride: usize, dst: &mut [f32]) {
    for (s, d) in src.chunks_exact(width).zip(dst.chunks_mut(stride)) {
        copy(&mut d[..width], s);
    }
}

/// Copies a short run in 16-float pieces the compiler moves with vector
/// registers, instead of one `memcpy` call per head row.
#[inline(always)]
pub(super) fn copy(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        let d: &mut [f32; 16] = d.try_into().expect("16-float chunk");
        *d = *<&[f32; 16]>::try_from(s).expect("16-float chunk");
    }
    d.into_remainder().copy_from_slice(s.remainder());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_then_merge_is_the_identity_and_places_each_head() {
        let layout = HeadLayout {
            batch: 2,
            len: 3,
            n_head: 2,
            head_dim: 17,
        };
        let width = 3 * 2 * 17;
        let src: Vec<f32> = (0..2 * 3 * width).map(|i| i as f32).collect();
        let mut k = vec![0.0; 2 * 2 * 3 * 17];
        let col0 = 2 * 17;
        layout.check(&src, width, col0, &k);
        split_heads(&layout, &src, width, col0, 0, &mut k);
        // k[b=1, h=1, t=2, d=16] comes from src[b=1, t=2, col0 + 17 + 16].
        let at = ((2 + 1) * 3 + 2) * 17 + 16;
        assert_eq!(k[at], src[(3 + 2) * width + col0 + 17 + 16]);
        let mut back = vec![-1.0; src.len()];
        merge_heads(&layout, &k, &mut back, width, col0, 0);
        for (i, (&b, &s)) in back.iter().zip(&src).enumerate() {
            let in_k = (col0..col0 + 34).contains(&(i % width));
            assert_eq!(b, if in_k { s } else { -1.0 }, "element {i}");
        }
    }

    #[test]
    fn parts_starting_mid_buffer_match_the_whole_call() {
        let layout = HeadLayout {
            batch: 3,
            len: 4,
            n_head: 2,
            head_dim: 32,
        };
        let width = 64;
        let src: Vec<f32> = (0..3 * 4 * width).map(|i| i as f32 * 0.5).collect();
        let mut whole = vec![0.0; src.len()];
        split_heads(&layout, &src, width, 0, 0, &mut whole);
        let mut parts = vec![0.0; src.len()];
        let (a, b) = parts.split_at_mut(3 * layout.head_block());
        split_heads(&layout, &src, width, 0, 0, a);
        split_heads(&layout, &src, width, 0, 3, b);
        assert_eq!(whole, parts);
        let mut merged = vec![0.0; src.len()];
        let (a, b) = merged.split_at_mut(4 * width);
        merge_heads(&layout, &whole, a, width, 0, 0);
        merge_heads(&layout, &whole, b, width, 0, 1);
        assert_eq!(merged, src);
    }
}
