//! The linear layers and the tied head: cuBLAS `sgemm` calls through
//! [`gemm`](crate::cuda::gemm)'s mapping, plus the bias kernels.

use super::{Launcher, Span, bias_add, column_sum_into, ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::gemm::{self, Operand, Sgemm};

/// The buffers a layer's products read, by [`Operand`].
struct Operands {
    x: Span,
    w: Span,
    dy: Span,
}

impl Operands {
    /// Runs `g` into `c`, reading its operands from these buffers.
    fn sgemm(&self, dev: &dyn Launcher, g: &Sgemm, c: Span) -> Result<(), CudaError> {
        let addr = |o: Operand| match o {
            Operand::X => self.x.addr,
            Operand::W => self.w.addr,
            Operand::Dy => self.dy.addr,
        };
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        // SAFETY: the callers checked every buffer against the product's shape.
        unsafe { dev.sgemm(g, addr(g.a), addr(g.b), c.addr) }
    }
}

/// Rows of `x [rows, d_in]`, checking `w [d_in, d_out]`.
fn linear_rows(
    k: &'static str,
    x: Span,
    w: Span,
    d_in: usize,
    d_out: usize,
) -> Result<usize, CudaError> {
    ensure_len(k, "w", w.len, d_in, d_out)?;
    rows_of(k, "x", x.len, d_in)
}

/// `out = x·w + bias` with `w` in Conv1D layout `[d_in, d_out]`: the bias
/// is broadcast into `out`, then the GEMM adds the product (beta = 1).
pub fn linear_forward(
    dev: &dyn Launcher,
    x: Span,
    w: Span,
    bias: Option<Span>,
    out: Span,
    d_in: usize,
    d_out: usize,
) -> Result<(), CudaError> {
    const K: &str = "linear_forward";
    let rows = linear_rows(K, x, w, d_in, d_out)?;
    ensure_len(K, "out", out.len, rows, d_out)?;
    let beta = match bias {
        Some(bias) => {
            ensure_len(K, "bias", bias.len, 1, d_out)?;
            bias_add(dev, None, bias, out)?;
            1.0
        }
        None => 0.0,
    };
    let operands = Operands { x, w, dy: out };
    operands.sgemm(dev, &gemm::linear_forward(rows, d_in, d_out, beta), out)
}

/// `dx = dy·wᵀ`; `dw += xᵀ·dy`; `db += colsum(dy)`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dev: &dyn Launcher,
    dy: Span,
    x: Span,
    w: Span,
    dx: Span,
    dw: Span,
    db: Option<Span>,
    d_in: usize,
    d_out: usize,
) -> Result<(), CudaError> {
    const K: &str = "linear_backward";
    let rows = linear_rows(K, x, w, d_in, d_out)?;
    ensure_len(K, "dy", dy.len, rows, d_out)?;
    ensure_len(K, "dx", dx.len, rows, d_in)?;
    ensure_len(K, "dw", dw.len, d_in, d_out)?;
    let [g_dx, g_dw] = gemm::linear_backward(rows, d_in, d_out);
    let operands = Operands { x, w, dy };
    operands.sgemm(dev, &g_dx, dx)?;
    operands.sgemm(dev, &g_dw, dw)?;
    match db {
        Some(db) => column_sum_into(dev, dy, db),
        None => Ok(()),
    }
}

/// Rows of `x [rows, c]` and the vocabulary of `wte [vocab, c]`.
fn head_sizes(k: &'static str, x: Span, wte: Span, c: usize) -> Result<(usize, usize), CudaError> {
    Ok((rows_of(k, "x", x.len, c)?, rows_of(k, "wte", wte.len, c)?))
}

/// `logits = x·wteᵀ` (tied output head).
pub fn tied_head_forward(
    dev: &dyn Launcher,
    x: Span,
    wte: Span,
    logits: Span,
    c: usize,
) -> Result<(), CudaError> {
    const K: &str = "tied_head_forward";
    let (rows, vocab) = head_sizes(K, x, wte, c)?;
    ensure_len(K, "logits", logits.len, rows, vocab)?;
    let operands = Operands {
        x,
        w: wte,
        dy: logits,
    };
    operands.sgemm(dev, &gemm::tied_head_forward(rows, c, vocab), logits)
}

/// `dx = dlogits·wte`; `dwte += dlogitsᵀ·x`.
pub fn tied_head_backward(
    dev: &dyn Launcher,
    dlogits: Span,
    x: Span,
    wte: Span,
    dx: Span,
    dwte: Span,
    c: usize,
) -> Result<(), CudaError> {
    const K: &str = "tied_head_backward";
    let (rows, vocab) = head_sizes(K, x, wte, c)?;
    ensure_len(K, "dlogits", dlogits.len, rows, vocab)?;
    ensure_len(K, "dx", dx.len, rows, c)?;
    ensure_len(K, "dwte", dwte.len, vocab, c)?;
    let [g_dx, g_dwte] = gemm::tied_head_backward(rows, c, vocab);
    let operands = Operands {
        x,
        w: wte,
        dy: dlogits,
    };
    operands.sgemm(dev, &g_dx, dx)?;
    operands.sgemm(dev, &g_dwte, dwte)
}
