//! The linear layers and the tied head: cuBLAS calls through
//! [`gemm`](crate::cuda::gemm)'s mapping (`sgemm`, or `cublasGemmEx` on bf16
//! copies of the operands), plus the bias kernels.

use super::{Launcher, Span, bias_add, column_sum_into, ensure_len, round_to_bf16, rows_of};
use crate::cuda::CudaError;
use crate::cuda::gemm::{self, GemmInputs, Operand, Sgemm};
use crate::cuda::launcher::Scratch;

/// The buffers a layer's products read, by [`Operand`], and the element
/// type the products take.
struct Operands {
    x: Span,
    w: Span,
    dy: Span,
    inputs: GemmInputs,
}

impl Operands {
    /// Runs `g` into `c`, reading its operands from these buffers: as they
    /// are for f32 products, rounded to bf16 copies first for bf16 ones.
    fn gemm(&self, dev: &dyn Launcher, g: &Sgemm, c: Span) -> Result<(), CudaError> {
        let span = |o: Operand| match o {
            Operand::X => self.x,
            Operand::W => self.w,
            Operand::Dy => self.dy,
        };
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        match self.inputs {
            // SAFETY: the callers checked every buffer against the product's shape.
            GemmInputs::F32 => unsafe {
                dev.gemm(g, GemmInputs::F32, span(g.a).addr, span(g.b).addr, c.addr)
            },
            GemmInputs::Bf16 => {
                let (a, b) = (rounded(dev, span(g.a))?, rounded(dev, span(g.b))?);
                // SAFETY: as above; the copies hold the operands' values.
                unsafe { dev.gemm(g, GemmInputs::Bf16, a.addr(), b.addr(), c.addr) }
            }
        }
    }
}

/// A bf16 copy of `x` (two values to a word, which is a bf16 array).
fn rounded(dev: &dyn Launcher, x: Span) -> Result<Scratch<'_, u32>, CudaError> {
    // `round_to_bf16` writes every word, the padding half of an odd count too.
    let words = Scratch::<u32>::uninit(dev, x.len.div_ceil(2))?;
    let out = Span {
        addr: words.addr(),
        len: x.len.div_ceil(2),
    };
    round_to_bf16(dev, x, out, x.len)?;
    Ok(words)
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
#[allow(clippy::too_many_arguments)]
pub fn linear_forward(
    dev: &dyn Launcher,
    inputs: GemmInputs,
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
    let operands = Operands {
        x,
        w,
        dy: out,
        inputs,
    };
    operands.gemm(dev, &gemm::linear_forward(rows, d_in, d_out, beta), out)
}

/// `dx = dy·wᵀ`; `dw += xᵀ·dy`; `db += colsum(dy)`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dev: &dyn Launcher,
    inputs: GemmInputs,
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
    let operands = Operands { x, w, dy, inputs };
    operands.gemm(dev, &g_dx, dx)?;
    operands.gemm(dev, &g_dw, dw)?;
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
    inputs: GemmInputs,
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
        inputs,
    };
    operands.gemm(dev, &gemm::tied_head_forward(rows, c, vocab), logits)
}

/// `dx = dlogits·wte`; `dwte += dlogitsᵀ·x`.
#[allow(clippy::too_many_arguments)]
pub fn tied_head_backward(
    dev: &dyn Launcher,
    inputs: GemmInputs,
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
        inputs,
    };
    operands.gemm(dev, &g_dx, dx)?;
    operands.gemm(dev, &g_dwte, dwte)
}
