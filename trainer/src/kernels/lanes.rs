//! Sixteen `f32` lanes as each ISA holds them, for the register-blocked
//! products of the attention tiles ([`attention_tile`](super::attention_tile)):
//! one AVX-512 register, two AVX2 registers, or sixteen scalars.
//!
//! The products keep their accumulators in these values, so the vector code
//! is written out rather than left to LLVM's auto-vectorizer: the scalar
//! form vectorized or not depending on how much surrounding code was inlined
//! into the per-ISA function (one build ran the attention 3× slower, its
//! accumulators spilled to the stack, after changes elsewhere in the crate).

use super::simd::MulAdd;

/// Lanes per [`Lanes::V`].
pub(crate) const LANES: usize = 16;

/// Sixteen lanes of `f32` and the operations the tile products need.
///
/// Every operation is `unsafe`: an ISA's implementation runs its
/// intrinsics, so it may be called only where the CPU has that ISA
/// (callers dispatch on it first, as `per_isa!` does).
pub(crate) trait Lanes: MulAdd {
    /// The sixteen lanes.
    type V: Copy;

    /// All lanes 0.
    ///
    /// # Safety
    /// The CPU has the implementation's ISA.
    unsafe fn zero() -> Self::V;

    /// Lanes from `p[0..16]`.
    ///
    /// # Safety
    /// The CPU has the ISA; `p` points to 16 readable `f32`.
    unsafe fn load(p: *const f32) -> Self::V;

    /// Lanes into `p[0..16]`.
    ///
    /// # Safety
    /// The CPU has the ISA; `p` points to 16 writable `f32`.
    unsafe fn store(p: *mut f32, v: Self::V);

    /// `a·b + c` lane by lane, `a` broadcast (fused where the ISA has FMA).
    ///
    /// # Safety
    /// The CPU has the ISA.
    unsafe fn fma(a: f32, b: Self::V, c: Self::V) -> Self::V;

    /// `a + b` lane by lane.
    ///
    /// # Safety
    /// The CPU has the ISA.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
}

/// Scalars: the baseline (no FMA, see [`Unfused`](super::simd::Unfused)).
impl Lanes for super::simd::Unfused {
    type V = [f32; LANES];

    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; LANES]
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: per the caller.
        unsafe { p.cast::<[f32; LANES]>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: per the caller.
        unsafe { p.cast::<[f32; LANES]>().write_unaligned(v) }
    }

    #[inline(always)]
    unsafe fn fma(a: f32, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| Self::mul_add(a, b[i], c[i]))
    }

    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, Lanes};
    use crate::kernels::simd::MulAdd;

    /// AVX-512 (with FMA): one `zmm` register.
    pub(crate) struct Avx512;

    /// AVX2 with FMA: two `ymm` registers.
    pub(crate) struct Avx2;

    impl MulAdd for Avx512 {
        #[inline(always)]
        fn mul_add(a: f32, b: f32, c: f32) -> f32 {
            a.mul_add(b, c)
        }
    }

    impl MulAdd for Avx2 {
        #[inline(always)]
        fn mul_add(a: f32, b: f32, c: f32) -> f32 {
            a.mul_add(b, c)
        }
    }

    // SAFETY (every intrinsic below): per each method's contract, the CPU
    // has AVX-512 F (respectively AVX2 and FMA), and pointers are valid.
    impl Lanes for Avx512 {
        type V = __m512;

        #[inline(always)]
        unsafe fn zero() -> Self::V {
            unsafe { _mm512_setzero_ps() }
        }

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            unsafe { _mm512_loadu_ps(p) }
        }

        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            unsafe { _mm512_storeu_ps(p, v) }
        }

        #[inline(always)]
        unsafe fn fma(a: f32, b: Self::V, c: Self::V) -> Self::V {
            unsafe { _mm512_fmadd_ps(_mm512_set1_ps(a), b, c) }
        }

        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm512_add_ps(a, b) }
        }
    }

    impl Lanes for Avx2 {
        type V = [__m256; 2];

        #[inline(always)]
        unsafe fn zero() -> Self::V {
            unsafe { [_mm256_setzero_ps(); 2] }
        }

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(LANES / 2))] }
        }

        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            unsafe {
                _mm256_storeu_ps(p, v[0]);
                _mm256_storeu_ps(p.add(LANES / 2), v[1]);
            }
        }

        #[inline(always)]
        unsafe fn fma(a: f32, b: Self::V, c: Self::V) -> Self::V {
            unsafe {
                let a = _mm256_set1_ps(a);
                [
                    _mm256_fmadd_ps(a, b[0], c[0]),
                    _mm256_fmadd_ps(a, b[1], c[1]),
                ]
            }
        }

        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            unsafe { [_mm256_add_ps(a[0], b[0]), _mm256_add_ps(a[1], b[1])] }
        }
    }
}
