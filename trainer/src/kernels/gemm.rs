//! Matrix products, through the `gemm` crate's f32 kernels.
//!
//! `gemm` 0.19 is built with its `x86-v4` feature: AVX-512 micro-kernels,
//! chosen at run time (AVX2/FMA and scalar kernels remain for other CPUs).
//! On stable Rust ≥ 1.89 that feature needs no nightly. The measurements
//! behind the choice are in the [`kernels`](super) module docs. Each call runs
//! single-threaded; the kernels split the work over the rank's [`Threads`]
//! instead of handing `gemm` a thread pool: by output rows, or for weight
//! gradients by tokens ([`weight_gradient`]).
//!
//! All matrices are row-major `f32`; weights use the Hugging Face Conv1D
//! layout `[in, out]`, so a linear layer is `y = x·W + b`. Each parallel
//! product has a `_with` form that takes the single-threaded [`Product`]
//! it runs on each part: f32 (`gemm`), or bf16 operands with f32
//! accumulation ([`Bf16Gemm`]); the plain forms are f32.

use std::cell::RefCell;

use super::gemm_bf16::Bf16Gemm;
use super::{Threads, column_sum, residual};

/// Products smaller than this many multiply-adds stay on one thread: handing
/// work to another thread costs more than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// A split along the inner dimension gives each part at least this many of
/// its steps.
const K_SPLIT_MIN_PER_PART: usize = 64;

/// The most `f32` elements (64 MiB) the partial products of
/// [`weight_gradient`] may take on one thread.
const K_SPLIT_MAX_FLOATS: usize = 1 << 24;

/// Column sums over fewer elements than this stay on one thread.
const PARALLEL_MIN_SUM: usize = 1 << 16;

/// A read-only matrix view: `rows × cols` with element `(i, j)` at
/// `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix buffer is not rows × cols");
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether the view is the whole of a dense row-major matrix from the
    /// start of its buffer.
    fn is_dense(&self) -> bool {
        self.col_stride == 1
            && self.row_stride == self.cols
            && self.data.len() >= self.rows * self.cols
    }

    /// One past the largest element index the view touches.
    pub(super) fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }

    /// Columns `start..start + count` of this view.
    fn columns(self, start: usize, count: usize) -> Self {
        self.t().rows(start, count).t()
    }

    /// Rows `start..start + count` of this view.
    fn rows(self, start: usize, count: usize) -> Self {
        assert!(start + count <= self.rows);
        let offset = if count == 0 {
            0
        } else {
            start * self.row_stride
        };
        MatRef {
            data: &self.data[offset..],
            rows: count,
            ..self
        }
    }
}

/// The single-threaded kernel a parallel product runs on each part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Product {
    /// f32 operands, through the `gemm` crate ([`gemm_serial`]).
    #[default]
    F32,
    /// Operands rounded to bf16, f32 accumulation ([`Bf16Gemm`]).
    Bf16(Bf16Gemm),
}

impl Product {
    /// `c = a·b + beta·c` on the calling thread.
    pub fn serial(self, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
        match self {
            Product::F32 => gemm_serial(a, b, beta, c),
            Product::Bf16(kernels) => kernels.gemm_serial(a, b, beta, c),
        }
    }
}

/// `c = a·b + beta·c` with `c` dense row-major `[a.rows, b.cols]`, split by
/// rows of `c` over `threads`.
pub fn gemm(threads: &Threads, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
    gemm_with(threads, Product::F32, a, b, beta, c);
}

/// [`gemm()`] on `product`'s kernel.
pub fn gemm_with(
    threads: &Threads,
    product: Product,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &mut [f32],
) {
    gemm_rows(threads, product, a, b, c, |_| beta);
}

/// Splits `c = a·b` by rows over `threads`; each part first calls
/// `init(rows)`, which may fill its rows of `c`, and gets back the `beta`
/// its product adds to them with.
fn gemm_rows(
    threads: &Threads,
    product: Product,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    init: impl Fn(&mut [f32]) -> f32 + Sync + Send,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(c.len(), m * n, "output buffer is not a.rows × b.cols");
    if m == 0 || n == 0 {
        return;
    }
    let parts = if m * k * n < PARALLEL_MIN_MACS {
        1
    } else {
        threads.count().min(m)
    };
    let rows_per_part = m.div_ceil(parts);
    if parts == 1 {
        let beta = init(c);
        product.serial(a, b, beta, c);
    } else {
        threads.for_each_chunk(c, rows_per_part * n, |i, c_part| {
            let start = i * rows_per_part;
            let beta = init(c_part);
            product.serial(a.rows(start, c_part.len() / n), b, beta, c_part);
        });
    }
}

/// Weight and bias gradients of a linear layer: `c += a·b` with `a = xᵀ`
/// and `b = dy`, and, when `column_sums` is given, `column_sums +=` the
/// column sums of the dense `b`.
///
/// The work is split over `threads` along the inner dimension, the token
/// count: part `i` multiplies its share of the columns of `a` by the
/// matching rows of `b` into a partial product of its own, sums those rows
/// of `b` while they are in its cache, and the partials are then added in
/// part order. Each thread thus reads only its share of the tokens (the
/// rows the row-split kernels before it wrote on that thread), where a split
/// by output rows makes every thread read all of them. Small products, and
/// ones whose partials would take more than 64 MiB, use [`gemm()`] and
/// [`column_sum_into`] instead.
pub fn weight_gradient(
    threads: &Threads,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    column_sums: Option<&mut [f32]>,
) {
    weight_gradient_with(threads, Product::F32, a, b, c, column_sums);
}

/// [`weight_gradient`] on `product`'s kernel (the column sums stay f32).
pub fn weight_gradient_with(
    threads: &Threads,
    product: Product,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    column_sums: Option<&mut [f32]>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(c.len(), m * n, "output buffer is not a.rows × b.cols");
    let sums_len = column_sums.as_ref().map_or(0, |s| s.len());
    if column_sums.is_some() {
        assert!(b.is_dense(), "column sums need a dense row-major b");
        assert_eq!(sums_len, n, "column sums are not b.cols long");
    }
    let parts = threads.count();
    let slot = m * n + sums_len;
    let split = parts > 1
        && m * k * n >= PARALLEL_MIN_MACS
        && k >= K_SPLIT_MIN_PER_PART * parts
        && parts * slot <= K_SPLIT_MAX_FLOATS;
    if !split {
        gemm_with(threads, product, a, b, 1.0, c);
        if let Some(sums) = column_sums {
            column_sum_into(threads, &b.data[..k * n], sums);
        }
        return;
    }
    thread_local! {
        /// Each part's partial product and column sums, kept between calls
        /// so a step allocates nothing.
        static PARTIALS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    PARTIALS.with_borrow_mut(|partials| {
        partials.resize(parts * slot, 0.0);
        let per_part = k.div_ceil(parts);
        threads.for_each_chunk(partials, slot, |i, slot| {
            let start = (i * per_part).min(k);
            let len = per_part.min(k - start);
            let (partial, sums) = slot.split_at_mut(m * n);
            product.serial(a.columns(start, len), b.rows(start, len), 0.0, partial);
            if !sums.is_empty() {
                sums.fill(0.0);
                column_sum::column_sum_into(&b.data[start * n..(start + len) * n], n, 0, sums);
            }
        });
        let partials = &*partials;
        let chunk = (m * n).div_ceil(parts).next_multiple_of(16);
        threads.for_each_chunk(c, chunk, |i, c| {
            for slot in partials.chunks_exact(slot) {
                residual::add_assign(c, &slot[i * chunk..][..c.len()]);
            }
        });
        if let Some(sums) = column_sums {
            for slot in partials.chunks_exact(slot) {
                residual::add_assign(sums, &slot[m * n..]);
            }
        }
    });
}

/// `c = a·b + beta·c` on the calling thread.
pub fn gemm_serial(a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(c.len(), m * n, "output buffer is not a.rows × b.cols");
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.extent() <= a.data.len() && b.extent() <= b.data.len());
    if k == 0 {
        c.iter_mut().for_each(|x| *x *= beta);
        return;
    }
    // `gemm` computes dst = alpha·dst + beta·lhs·rhs, reading dst only when
    // asked to.
    let accumulate = beta != 0.0;
    // SAFETY: the asserts above keep every element the strides reach inside
    // the borrowed slices, and `c` is exclusively borrowed.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            beta,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Linear layer forward: `out[rows, d_out] = x[rows, d_in] · w[d_in, d_out] + bias`.
pub fn linear_forward(
    threads: &Threads,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    linear_forward_with(threads, Product::F32, x, w, bias, out, d_in, d_out);
}

/// [`linear_forward`] on `product`'s kernel.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_with(
    threads: &Threads,
    product: Product,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    let rows = x.len() / d_in.max(1);
    if let Some(b) = bias {
        assert_eq!(b.len(), d_out, "bias length is not d_out");
    }
    // Each part writes the bias into its own rows right before its product
    // reads them back: in parallel, and while they are in its cache.
    gemm_rows(
        threads,
        product,
        MatRef::new(x, rows, d_in),
        MatRef::new(w, d_in, d_out),
        out,
        |rows| match bias {
            Some(b) => {
                rows.chunks_exact_mut(d_out)
                    .for_each(|row| row.copy_from_slice(b));
                1.0
            }
            None => 0.0,
        },
    );
}

/// Linear layer backward. Overwrites `dx = dy·wᵀ`; accumulates
/// `dw += xᵀ·dy` and `db += colsum(dy)`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    threads: &Threads,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    d_in: usize,
    d_out: usize,
) {
    linear_backward_with(threads, Product::F32, dy, x, w, dx, dw, db, d_in, d_out);
}

/// [`linear_backward`] on `product`'s kernel.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_with(
    threads: &Threads,
    product: Product,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    d_in: usize,
    d_out: usize,
) {
    let rows = x.len() / d_in.max(1);
    let dy_m = MatRef::new(dy, rows, d_out);
    let w_t = MatRef::new(w, d_in, d_out).t();
    gemm_with(threads, product, dy_m, w_t, 0.0, dx);
    let x_t = MatRef::new(x, rows, d_in).t();
    weight_gradient_with(threads, product, x_t, dy_m, dw, db);
}

/// `acc += Σ_rows m[row]` for a row-major matrix with `acc.len()` columns,
/// split by columns over `threads` (each column sums its rows in order, so
/// the result does not depend on the thread count).
pub fn column_sum_into(threads: &Threads, m: &[f32], acc: &mut [f32]) {
    let n = acc.len();
    if n == 0 {
        return;
    }
    assert_eq!(m.len() % n, 0, "matrix is not rows × acc.len()");
    let parts = if m.len() < PARALLEL_MIN_SUM {
        1
    } else {
        threads.count()
    };
    // Column blocks of whole cache lines.
    let cols = n.div_ceil(parts).next_multiple_of(16);
    threads.for_each_chunk(acc, cols, |i, acc| {
        column_sum::column_sum_into(m, n, i * cols, acc)
    });
}

/// Tied output head forward: `logits[rows, vocab] = x[rows, c] · wteᵀ` with
/// `wte` the `[vocab, c]` token embedding.
pub fn tied_head_forward(threads: &Threads, x: &[f32], wte: &[f32], logits: &mut [f32], c: usize) {
    tied_head_forward_with(threads, Product::F32, x, wte, logits, c);
}

/// [`tied_head_forward`] on `product`'s kernel.
pub fn tied_head_forward_with(
    threads: &Threads,
    product: Product,
    x: &[f32],
    wte: &[f32],
    logits: &mut [f32],
    c: usize,
) {
    let vocab = wte.len() / c.max(1);
    let rows = x.len() / c.max(1);
    gemm_with(
        threads,
        product,
        MatRef::new(x, rows, c),
        MatRef::new(wte, vocab, c).t(),
        0.0,
        logits,
    );
}

/// Tied output head backward: overwrites `dx = dlogits·wte`, accumulates
/// `dwte += dlogitsᵀ·x`.
pub fn tied_head_backward(
    threads: &Threads,
    dlogits: &[f32],
    x: &[f32],
    wte: &[f32],
    dx: &mut [f32],
    dwte: &mut [f32],
    c: usize,
) {
    tied_head_backward_with(threads, Product::F32, dlogits, x, wte, dx, dwte, c);
}

/// [`tied_head_backward`] on `product`'s kernel.
#[allow(clippy::too_many_arguments)]
pub fn tied_head_backward_with(
    threads: &Threads,
    product: Product,
    dlogits: &[f32],
    x: &[f32],
    wte: &[f32],
    dx: &mut [f32],
    dwte: &mut [f32],
    c: usize,
) {
    let vocab = wte.len() / c.max(1);
    let rows = x.len() / c.max(1);
    let dl = MatRef::new(dlogits, rows, vocab);
    gemm_with(threads, product, dl, MatRef::new(wte, vocab, c), 0.0, dx);
    let x_m = MatRef::new(x, rows, c);
    weight_gradient_with(threads, product, dl.t(), x_m, dwte, None);
}
