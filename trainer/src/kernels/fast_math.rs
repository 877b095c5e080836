//! `exp` in branch-free f32 arithmetic that LLVM vectorizes.
//!
//! libm's `expf` is a scalar call; in attention, GELU and
//! cross-entropy it was over a third of a training step. This version
//! uses only `+ − × ÷`, comparisons and bit casts, so a loop over a slice
//! becomes SIMD code (see [`simd_dispatch!`](super::simd::simd_dispatch)).
//!
//! * [`exp`]: range reduction `x = n·ln2 + r`, `|r| ≤ ln2/2` (ln2 split in two
//!   for an exact `n·ln2`), a degree-7 polynomial for `e^r` (the classic
//!   Cephes `expf` coefficients) and `2^n` built in the exponent bits.
//!   Relative error ≤ 2 ulp for results above `f32::MIN_POSITIVE`; inputs
//!   below −87.3 give 0 (no subnormals), inputs above 88 give `exp(88)`;
//!   NaN gives NaN.
//!
//! Bounds are checked against f64 on dense grids in the tests.

use super::simd::MulAdd;

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2 = LN2_HI + LN2_LO`, `LN2_HI` with few mantissa bits so `n·LN2_HI`
/// is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting `1.5·2^23` rounds an f32 of magnitude below 2^22
/// to the nearest integer (ties to even).
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Largest input [`exp`] honours; `e^88` is below `f32::MAX`.
const EXP_HI: f32 = 88.0;
/// Below this the result is under `f32::MIN_POSITIVE` and flushed to 0.
const EXP_LO: f32 = -87.336_55;

/// `e^x` (see the module docs for range and accuracy), with its
/// multiply-adds evaluated as `M` says (fused in FMA builds).
#[inline(always)]
pub(crate) fn exp<M: MulAdd>(x: f32) -> f32 {
    let clamped = if x > EXP_HI { EXP_HI } else { x };
    let clamped = if clamped < EXP_LO - 1.0 {
        EXP_LO - 1.0
    } else {
        clamped
    };
    let shifted = clamped * LOG2E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = M::mul_add(-n, LN2_LO, M::mul_add(-n, LN2_HI, clamped));
    let mut p = 1.987_569_1e-4_f32;
    p = M::mul_add(p, r, 1.398_199_9e-3);
    p = M::mul_add(p, r, 8.333_452e-3);
    p = M::mul_add(p, r, 4.166_579_6e-2);
    p = M::mul_add(p, r, 1.666_666_5e-1);
    p = M::mul_add(p, r, 5e-1);
    let er = M::mul_add(p, r * r, r) + 1.0;
    // The low bits of `shifted` hold n (two's complement); n + 127 in the
    // exponent field is 2^n, and the shift drops the magic's own bits.
    let biased = shifted.to_bits().wrapping_add(127);
    let pow2 = f32::from_bits(biased << 23);
    let y = er * pow2;
    if x < EXP_LO { 0.0 } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{Fused, Unfused};

    /// Distance in units in the last place between `got` and the f64 truth
    /// rounded to f32.
    fn ulps(got: f32, truth: f64) -> u32 {
        let want = truth as f32;
        if got == want {
            return 0;
        }
        let key = |v: f32| {
            let b = v.to_bits() as i64;
            if b < 0x8000_0000 { b } else { 0x8000_0000 - b }
        };
        (key(got) - key(want)).unsigned_abs() as u32
    }

    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    /// Both evaluations: fused (FMA builds) and unfused (baseline).
    #[test]
    fn exp_is_within_2_ulp_of_f64_on_its_normal_range() {
        within_2_ulp(exp::<Fused>);
        within_2_ulp(exp::<Unfused>);
    }

    fn within_2_ulp(exp: fn(f32) -> f32) {
        let worst = grid(-87.0, 88.0, 2_000_000)
            .chain(grid(-1.0, 1.0, 200_000))
            .map(|x| (ulps(exp(x), (x as f64).exp()), x))
            .max_by_key(|&(u, _)| u)
            .unwrap();
        assert!(worst.0 <= 2, "worst {} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn exp_edges_flush_saturate_and_keep_nan() {
        for exp in [exp::<Fused>, exp::<Unfused>] {
            let cases = [
                (0.0f32, 1.0f32),
                (f32::NEG_INFINITY, 0.0),
                (-1000.0, 0.0),
                (-87.4, 0.0),
            ];
            for (x, want) in cases {
                assert_eq!(exp(x), want, "exp({x})");
            }
            assert_eq!(exp(f32::INFINITY), exp(88.0));
            assert!(exp(88.0).is_finite() && exp(88.0) > 1e38);
            assert!(exp(f32::NAN).is_nan());
        }
    }
}
