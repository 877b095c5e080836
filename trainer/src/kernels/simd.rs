//! Runtime ISA dispatch for loops written as plain scalar code.
//!
//! [`simd_dispatch!`] compiles one function body three times: for AVX-512,
//! for AVX2 and for the crate's baseline target, and picks the widest the
//! CPU has at run time (`is_x86_feature_detected!` caches its answer, so a
//! call costs one relaxed load). The body is ordinary Rust over slices
//! calling `#[inline(always)]` math such as [`fast_math`](super::fast_math);
//! LLVM vectorizes it for each target. Inside the body a type `M:`
//! [`MulAdd`] is in scope: [`Fused`] in the AVX-512 and AVX2 versions (both
//! have FMA, so they give bit-identical results), [`Unfused`] in the
//! baseline one, whose results may differ in the last bits.

/// How `a·b + c` is evaluated: fused where the CPU has FMA (one rounding,
/// twice the throughput), else as a multiply and an add.
pub(crate) trait MulAdd {
    /// `a·b + c`.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// `f32::mul_add`, for code compiled with the `fma` target feature.
pub(crate) struct Fused;

/// `a * b + c`, for code compiled without `fma` (where `mul_add` would be a
/// slow library call).
pub(crate) struct Unfused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Defines `fn $name(args) { body }` compiled per ISA and dispatched at run
/// time, with `M: MulAdd` in scope in the body. Arguments must be plain
/// `ident: Type` pairs; a return type is optional.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        simd_dispatch! { $(#[$meta])* $vis fn $name($($arg: $ty),*) -> () $body }
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<M: $crate::kernels::simd::MulAdd>($($arg: $ty),*) -> $ret $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    body::<$crate::kernels::simd::Fused>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    body::<$crate::kernels::simd::Fused>($($arg),*)
                }
                if $crate::kernels::simd::has_avx512() {
                    // SAFETY: the CPU supports every feature `avx512` enables.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body::<$crate::kernels::simd::Unfused>($($arg),*)
        }
    };
}

pub(crate) use simd_dispatch;

/// Whether the CPU has the AVX-512 subsets the wide versions use.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512bw")
}
