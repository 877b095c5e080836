//! The trainer's row-major GEMMs as cuBLAS column-major `sgemm` calls (or
//! `cublasGemmEx` on bf16 inputs: the same arguments), in one place, and an
//! emulated `sgemm` with cuBLAS's exact semantics.
//!
//! A row-major `[r, c]` matrix is, read column-major, its transpose `[c, r]`
//! with leading dimension `c`. So a row-major `C = A·B` is computed as the
//! column-major `Cᵀ = Bᵀ·Aᵀ`: swap the operands, keep each one's own
//! transpose flag, and take `m = cols(C)`, `n = rows(C)`. With Conv1D
//! weights `w [d_in, d_out]` (row-major) this gives:
//!
//! | row-major product                  | transa, transb | m, n, k             | A, lda        | B, ldb         | beta |
//! |------------------------------------|----------------|---------------------|---------------|----------------|------|
//! | `out = x·w` (linear forward)       | N, N           | d_out, rows, d_in   | w, d_out      | x, d_in        | 0 (1 after a bias broadcast) |
//! | `dx = dy·wᵀ` (linear backward)     | T, N           | d_in, rows, d_out   | w, d_out      | dy, d_out      | 0    |
//! | `dw += xᵀ·dy` (linear backward)    | N, T           | d_out, d_in, rows   | dy, d_out     | x, d_in        | 1    |
//! | `logits = x·wteᵀ` (tied head)      | T, N           | vocab, rows, c      | wte, c        | x, c           | 0    |
//! | `dx = dlogits·wte` (tied head)     | N, N           | c, rows, vocab      | wte, c        | dlogits, vocab | 0    |
//! | `dwte += dlogitsᵀ·x` (tied head)   | N, T           | c, vocab, rows      | x, c          | dlogits, vocab | 1    |
//!
//! `ldc` is always `m` (the row-major output's row length). The bias of the
//! forward is broadcast into `out` first, then the product adds with
//! beta = 1; the bias gradient is a column sum (`column_sum_into`), which
//! cuBLAS does not compute.

/// The element type of a product's inputs `A` and `B`; `C` is f32 either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmInputs {
    /// f32 (`cublasSgemm`).
    F32,
    /// bf16 (two bytes each) with f32 accumulation: `cublasGemmEx` with
    /// `CUDA_R_16BF` inputs and `CUBLAS_COMPUTE_32F`.
    Bf16,
}

/// Whether cuBLAS reads an operand as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `CUBLAS_OP_N`.
    N,
    /// `CUBLAS_OP_T`.
    T,
}

/// Which operand of a product a call reads from which trainer buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// The layer input `x` (or `lnf` for the head).
    X,
    /// The weight (`w`, or `wte` for the head).
    W,
    /// The output gradient (`dy`, or `dlogits`).
    Dy,
}

/// The arguments of one column-major `sgemm`:
/// `C = alpha·op(A)·op(B) + beta·C` with `op(A)` `m × k`, `op(B)` `k × n`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgemm {
    /// Transpose flag of A.
    pub transa: Op,
    /// Transpose flag of B.
    pub transb: Op,
    /// Rows of `op(A)` and of C.
    pub m: usize,
    /// Columns of `op(B)` and of C.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// The buffer read as A.
    pub a: Operand,
    /// Leading dimension of A.
    pub lda: usize,
    /// The buffer read as B.
    pub b: Operand,
    /// Leading dimension of B.
    pub ldb: usize,
    /// Leading dimension of C.
    pub ldc: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of C's previous contents (1 accumulates).
    pub beta: f32,
}

/// The column-major call computing the row-major `C[rows_c, cols_c] =
/// op_l(L)·op_r(R) + beta·C`, where `L` is stored row-major with row length
/// `ld_l` and `R` with `ld_r`, and `inner` is the product's inner dimension.
#[allow(clippy::too_many_arguments)]
fn row_major(
    (l, op_l, ld_l): (Operand, Op, usize),
    (r, op_r, ld_r): (Operand, Op, usize),
    rows_c: usize,
    cols_c: usize,
    inner: usize,
    beta: f32,
) -> Sgemm {
    Sgemm {
        transa: op_r,
        transb: op_l,
        m: cols_c,
        n: rows_c,
        k: inner,
        a: r,
        lda: ld_r,
        b: l,
        ldb: ld_l,
        ldc: cols_c,
        alpha: 1.0,
        beta,
    }
}

/// `out[rows, d_out] = x[rows, d_in]·w[d_in, d_out] + beta·out`; beta = 1
/// after the bias was broadcast into `out`, else 0.
pub fn linear_forward(rows: usize, d_in: usize, d_out: usize, beta: f32) -> Sgemm {
    row_major(
        (Operand::X, Op::N, d_in),
        (Operand::W, Op::N, d_out),
        rows,
        d_out,
        d_in,
        beta,
    )
}

/// `dx = dy·wᵀ` (overwrites) and `dw += xᵀ·dy` of a linear layer.
pub fn linear_backward(rows: usize, d_in: usize, d_out: usize) -> [Sgemm; 2] {
    [
        row_major(
            (Operand::Dy, Op::N, d_out),
            (Operand::W, Op::T, d_out),
            rows,
            d_in,
            d_out,
            0.0,
        ),
        row_major(
            (Operand::X, Op::T, d_in),
            (Operand::Dy, Op::N, d_out),
            d_in,
            d_out,
            rows,
            1.0,
        ),
    ]
}

/// `logits[rows, vocab] = x[rows, c]·wteᵀ` with `wte [vocab, c]`.
pub fn tied_head_forward(rows: usize, c: usize, vocab: usize) -> Sgemm {
    row_major(
        (Operand::X, Op::N, c),
        (Operand::W, Op::T, c),
        rows,
        vocab,
        c,
        0.0,
    )
}

/// `dx = dlogits·wte` (overwrites) and `dwte += dlogitsᵀ·x` of the tied head.
pub fn tied_head_backward(rows: usize, c: usize, vocab: usize) -> [Sgemm; 2] {
    [
        row_major(
            (Operand::Dy, Op::N, vocab),
            (Operand::W, Op::N, c),
            rows,
            c,
            vocab,
            0.0,
        ),
        row_major(
            (Operand::Dy, Op::T, vocab),
            (Operand::X, Op::N, c),
            vocab,
            c,
            rows,
            1.0,
        ),
    ]
}

/// cuBLAS's `sgemm` on the host, column-major: `C = alpha·op(A)·op(B) +
/// beta·C` where element `(i, j)` of a matrix is at `i + j·ld`. Like cuBLAS,
/// C is not read when beta = 0 (NaNs there do not propagate). Sums in f64
/// and rounds once, so it is an independent reference for the f32 kernels.
pub fn emulated_sgemm(g: &Sgemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let at = |i: usize, l: usize| match g.transa {
        Op::N => a[i + l * g.lda],
        Op::T => a[l + i * g.lda],
    };
    let bt = |l: usize, j: usize| match g.transb {
        Op::N => b[l + j * g.ldb],
        Op::T => b[j + l * g.ldb],
    };
    for j in 0..g.n {
        for i in 0..g.m {
            let dot: f64 = (0..g.k)
                .map(|l| f64::from(at(i, l)) * f64::from(bt(l, j)))
                .sum();
            let prev = if g.beta == 0.0 {
                0.0
            } else {
                f64::from(g.beta) * f64::from(c[i + j * g.ldc])
            };
            c[i + j * g.ldc] = (f64::from(g.alpha) * dot + prev) as f32;
        }
    }
}
