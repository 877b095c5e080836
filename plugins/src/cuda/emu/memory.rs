//! [`Emulator`]: cuda-emu as a [`Launcher`]. Its device memory is host
//! memory (addresses are host pointers), kernels run in the emulator with
//! the launch configuration they are given, and `sgemm` is the emulated
//! column-major one. Work is never queued: each call finishes before it
//! returns.

use std::alloc::Layout;
use std::ffi::c_void;

use super::runtime;
use crate::cuda::CudaError;
use crate::cuda::gemm::{Op, Sgemm, emulated_sgemm};
use crate::cuda::launch::LaunchConfig;
use crate::cuda::launcher::Launcher;

/// cuda-emu's device: host memory, the emulated kernels and `sgemm`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Emulator;

/// Device allocations are aligned like `cudaMalloc`'s.
const ALIGN: usize = 256;

fn layout(bytes: usize) -> Result<Layout, CudaError> {
    Layout::from_size_align(bytes, ALIGN).map_err(|_| CudaError::OutOfMemory { bytes })
}

/// Elements an operand of `rows × cols` (as `op` reads it) spans at leading
/// dimension `ld`, column-major.
fn extent(op: Op, rows: usize, cols: usize, ld: usize) -> usize {
    let (stored_rows, stored_cols) = match op {
        Op::N => (rows, cols),
        Op::T => (cols, rows),
    };
    if stored_cols == 0 {
        0
    } else {
        (stored_cols - 1) * ld + stored_rows
    }
}

impl Launcher for Emulator {
    fn alloc(&self, bytes: usize) -> Result<u64, CudaError> {
        // SAFETY: `bytes` is not zero (the trait's contract).
        let ptr = unsafe { std::alloc::alloc(layout(bytes)?) };
        if ptr.is_null() {
            return Err(CudaError::OutOfMemory { bytes });
        }
        Ok(ptr as u64)
    }

    unsafe fn free(&self, addr: u64, bytes: usize) {
        if let Ok(layout) = layout(bytes) {
            // SAFETY: allocated by `alloc` with this layout (the caller's contract).
            unsafe { std::alloc::dealloc(addr as *mut u8, layout) };
        }
    }

    unsafe fn write(&self, src: &[u8], dst: u64) -> Result<(), CudaError> {
        // SAFETY: `dst` holds `src.len()` bytes (the caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), CudaError> {
        // SAFETY: `src` holds `dst.len()` bytes (the caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    unsafe fn zero(&self, dst: u64, bytes: usize) -> Result<(), CudaError> {
        // SAFETY: `dst` holds `bytes` bytes (the caller's contract).
        unsafe { std::ptr::write_bytes(dst as *mut u8, 0, bytes) };
        Ok(())
    }

    unsafe fn launch(
        &self,
        kernel: &'static str,
        config: &LaunchConfig,
        params: &mut [*mut c_void],
    ) -> Result<(), CudaError> {
        // SAFETY: the caller's contract is the emulator's.
        unsafe { runtime::launch(kernel, config, params) }
    }

    unsafe fn sgemm(&self, g: &Sgemm, a: u64, b: u64, c: u64) -> Result<(), CudaError> {
        let view = |addr: u64, len: usize| {
            // SAFETY: the caller's contract: the matrices of `g` are there.
            unsafe { std::slice::from_raw_parts(addr as *const f32, len) }
        };
        let a = view(a, extent(g.transa, g.m, g.k, g.lda));
        let b = view(b, extent(g.transb, g.k, g.n, g.ldb));
        let c_len = extent(Op::N, g.m, g.n, g.ldc);
        // SAFETY: as above; C does not overlap A or B in any product.
        let c = unsafe { std::slice::from_raw_parts_mut(c as *mut f32, c_len) };
        emulated_sgemm(g, a, b, c);
        Ok(())
    }
}
