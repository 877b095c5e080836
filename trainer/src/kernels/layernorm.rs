//! LayerNorm over the last dimension (eps 1e-5, as GPT-2).
//!
//! Forward: `y = (x − mean)·rstd·w + b` with `rstd = 1/sqrt(var + eps)` and
//! the biased variance. The per-row `mean` and `rstd` are saved for backward.

/// GPT-2's LayerNorm epsilon.
pub const LAYERNORM_EPS: f32 = 1e-5;

/// Normalizes each `c`-wide row of `x` into `out`, saving `mean` and `rstd`
/// (one per row).
pub fn layernorm_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let c = weight.len();
    assert_eq!(bias.len(), c);
    assert_eq!(x.len(), out.len());
    assert_eq!(x.len(), mean.len() * c);
    assert_eq!(mean.len(), rstd.len());
    let rows = x.chunks_exact(c).zip(out.chunks_exact_mut(c));
    for ((x, y), (mu, rs)) in rows.zip(mean.iter_mut().zip(rstd.iter_mut())) {
        let m = x.iter().sum::<f32>() / c as f32;
        let var = x.iter().map(|&v| (v - m) * (v - m)).sum::<f32>() / c as f32;
        let s = 1.0 / (var + LAYERNORM_EPS).sqrt();
        for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(weight).zip(bias) {
            *y = (x - m) * s * w + b;
        }
        *mu = m;
        *rs = s;
    }
}

/// LayerNorm backward. ACCUMULATES into `dx` (the residual stream's
/// gradient), `dweight` and `dbias`.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    dout: &[f32],
    x: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
) {
    let c = weight.len();
    assert_eq!(dout.len(), x.len());
    assert_eq!(dx.len(), x.len());
    assert_eq!(x.len(), mean.len() * c);
    assert_eq!(dweight.len(), c);
    assert_eq!(dbias.len(), c);
    let rows = dout
        .chunks_exact(c)
        .zip(x.chunks_exact(c))
        .zip(dx.chunks_exact_mut(c));
    for (((dy, x), dx), (&m, &s)) in rows.zip(mean.iter().zip(rstd)) {
        // With xhat = (x − m)·s and g = dy·w:
        // dx = s·(g − mean(g) − xhat·mean(g·xhat)).
        let mut g_mean = 0.0f32;
        let mut gx_mean = 0.0f32;
        for ((&dy, &x), &w) in dy.iter().zip(x).zip(weight) {
            let g = dy * w;
            g_mean += g;
            gx_mean += g * (x - m) * s;
        }
        g_mean /= c as f32;
        gx_mean /= c as f32;
        for i in 0..c {
            let xhat = (x[i] - m) * s;
            dbias[i] += dy[i];
            dweight[i] += dy[i] * xhat;
            dx[i] += s * (dy[i] * weight[i] - g_mean - xhat * gx_mean);
        }
    }
}
