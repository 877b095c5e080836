use std::ops::Range;

use super::super::runtime::{launch, params};
use super::{ensure, ensure_len};
use crate::cuda::CudaError;
use crate::cuda::launch::{AdamWStep, elementwise, single_block, sum_squares, to_i32, to_i64};

/// `cptrain::optim::sum_of_squares` in f64, deterministic: a fixed grid of
/// per-block partials (`sum_squares_partials`), then one block sums them in
/// order (`sum_partials`).
pub fn sum_of_squares(values: &[f32]) -> Result<f64, CudaError> {
    const K: &str = "sum_squares_partials";
    if values.is_empty() {
        return Ok(0.0);
    }
    let config = sum_squares(values.len());
    let mut partials = vec![0.0f64; config.grid[0] as usize];
    let mut total = 0.0f64;
    let (x, n, part, out) = (
        values.as_ptr(),
        to_i64(values.len(), K, "elements")?,
        partials.as_mut_ptr(),
        &raw mut total,
    );
    let count = config.grid[0] as i32;
    // SAFETY: argument types match; `partials` has one slot per block.
    unsafe {
        launch(K, &config, &mut params![x, n, part])?;
        launch(
            "sum_partials",
            &single_block(),
            &mut params![part, count, out],
        )?;
    }
    Ok(total)
}

/// `cptrain::optim::scale`: `values *= factor`.
pub fn scale(values: &mut [f32], factor: f32) -> Result<(), CudaError> {
    const K: &str = "scale_values";
    let (x, n) = (values.as_mut_ptr(), to_i64(values.len(), K, "elements")?);
    // SAFETY: argument types match.
    unsafe { launch(K, &elementwise(values.len()), &mut params![x, n, factor]) }
}

/// One `cptrain::optim::AdamW` step over the whole buffer: `decayed` are
/// the ranges that get weight decay (sorted, disjoint, as `DecayMask`
/// keeps them), `step` the step's scalars.
pub fn adamw_step(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    decayed: &[Range<usize>],
    step: AdamWStep,
) -> Result<(), CudaError> {
    const K: &str = "adamw_step";
    let len = params.len();
    for (name, l) in [("grads", grads.len()), ("m", m.len()), ("v", v.len())] {
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
    let (p, g, mp, vp, r) = (
        params.as_mut_ptr(),
        grads.as_ptr(),
        m.as_mut_ptr(),
        v.as_mut_ptr(),
        ranges.as_ptr(),
    );
    let (n, count) = (
        to_i64(len, K, "elements")?,
        to_i32(decayed.len(), K, "decay ranges")?,
    );
    // SAFETY: argument types match (AdamWStep is the kernel's struct);
    // sizes checked above, `ranges` holds 2 × count values.
    unsafe {
        launch(
            K,
            &elementwise(len),
            &mut params![p, g, mp, vp, n, r, count, step],
        )
    }
}
