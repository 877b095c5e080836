use std::ops::Range;

use super::{Launcher, Span, ensure, ensure_len};
use crate::cuda::CudaError;
use crate::cuda::launch::{AdamWStep, elementwise, single_block, sum_squares, to_i32, to_i64};
use crate::cuda::launcher::{Scratch, params};

/// `cptrain::optim::sum_of_squares` in f64, deterministic: a fixed grid of
/// per-block partials (`sum_squares_partials`), then one block sums them in
/// order (`sum_partials`). Waits for the device (the sum comes back).
pub fn sum_of_squares(dev: &dyn Launcher, values: Span) -> Result<f64, CudaError> {
    const K: &str = "sum_squares_partials";
    if values.len == 0 {
        return Ok(0.0);
    }
    let config = sum_squares(values.len);
    let partials = Scratch::<f64>::zeroed(dev, config.grid[0] as usize)?;
    let total = Scratch::<f64>::zeroed(dev, 1)?;
    let (x, n, part, out) = (
        values.addr,
        to_i64(values.len, K, "elements")?,
        partials.addr(),
        total.addr(),
    );
    let count = config.grid[0] as i32;
    // SAFETY: argument types match; `partials` has one slot per block.
    unsafe {
        dev.launch(K, &config, &mut params![x, n, part])?;
        dev.launch(
            "sum_partials",
            &single_block(),
            &mut params![part, count, out],
        )?;
    }
    Ok(total.to_host()?[0])
}

/// `cptrain::optim::scale`: `values *= factor`.
pub fn scale(dev: &dyn Launcher, values: Span, factor: f32) -> Result<(), CudaError> {
    const K: &str = "scale_values";
    let (x, n) = (values.addr, to_i64(values.len, K, "elements")?);
    // SAFETY: argument types match.
    unsafe { dev.launch(K, &elementwise(values.len), &mut params![x, n, factor]) }
}

/// One `cptrain::optim::AdamW` step over the whole buffer: `decayed` are
/// the ranges that get weight decay (sorted, disjoint, as `DecayMask`
/// keeps them), `step` the step's scalars.
pub fn adamw_step(
    dev: &dyn Launcher,
    params: Span,
    grads: Span,
    m: Span,
    v: Span,
    decayed: &[Range<usize>],
    step: AdamWStep,
) -> Result<(), CudaError> {
    const K: &str = "adamw_step";
    let len = params.len;
    for (name, l) in [("grads", grads.len), ("m", m.len), ("v", v.len)] {
        ensure_len(K, name, l, len, 1)?;
    }
    let sorted = decayed.windows(2).all(|w| w[0].end <= w[1].start);
    ensure(
        K,
        sorted && decayed.iter().all(|r| r.start <= r.end && r.end <= len),
        || format!("decay ranges {decayed:?} are not sorted, disjoint ranges inside 0..{len}"),
    )?;
    let ranges: Vec<i64> = decayed
        .iter()
        .flat_map(|r| [r.start as i64, r.end as i64])
        .collect();
    let ranges = Scratch::from_host(dev, &ranges)?;
    let (p, g, mp, vp, r) = (params.addr, grads.addr, m.addr, v.addr, ranges.addr());
    let (n, count) = (
        to_i64(len, K, "elements")?,
        to_i32(decayed.len(), K, "decay ranges")?,
    );
    // SAFETY: argument types match (AdamWStep is the kernel's struct);
    // sizes checked above, `ranges` holds 2 × count values.
    unsafe {
        dev.launch(
            K,
            &elementwise(len),
            &mut params![p, g, mp, vp, n, r, count, step],
        )
    }
}
