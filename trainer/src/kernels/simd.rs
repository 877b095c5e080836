//! Runtime ISA dispatch for loops written as plain scalar code.
//!
//! [`simd_dispatch!`] compiles one function body three times: for AVX-512,
//! for AVX2 and for the crate's baseline target, and picks the widest the
//! CPU has at run time (`is_x86_feature_detected!` caches its answer, so a
//! call costs one relaxed load). The body is ordinary Rust over slices
//! calling `#[inline(always)]` math such as [`fast_math`](super::fast_math);
//! LLVM vectorizes it for each target. The math avoids `mul_add`, so every
//! version gives bit-identical results.

/// Defines `fn $name(args) { body }` compiled per ISA and dispatched at run
/// time. Arguments must be plain `ident: Type` pairs; a return type is optional.
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
            fn body($($arg: $ty),*) -> $ret $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    body($($arg),*)
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
            body($($arg),*)
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
