//! [`Emulator`]: cuda-emu as a [`Launcher`]. Its device memory is host
//! memory (addresses are host pointers), kernels run in the emulator with
//! the launch configuration they are given, and GEMMs are the emulated
//! column-major `sgemm` (bf16 inputs widened to f32 first, exactly). Work is never queued: each call finishes before it
//! returns.

use std::alloc::Layout;
use std::any::Any;
use std::ffi::c_void;

use super::runtime;
use crate::cuda::CudaError;
use crate::cuda::gemm::{GemmInputs, Op, Sgemm, emulated_sgemm};
use crate::cuda::launch::LaunchConfig;
use crate::cuda::launcher::Launcher;

/// cuda-emu's device: host memory, the emulated kernels and GEMMs.
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

/// `len` values of `T` at the emulated device address `addr`.
///
/// # Safety
/// `addr` must hold `len` values of `T`, not written while the slice lives.
unsafe fn host<'a, T>(addr: u64, len: usize) -> &'a [T] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(addr as *const T, len) }
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

    fn synchronize(&self) -> Result<(), CudaError> {
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    unsafe fn copy_from(
        &self,
        source: &dyn Launcher,
        src: u64,
        dst: u64,
        bytes: usize,
    ) -> Result<bool, CudaError> {
        if !source.as_any().is::<Emulator>() {
            return Ok(false);
        }
        // SAFETY: both ranges are host memory of emulated devices (the
        // caller's contract); distinct allocations never overlap, and
        // `copy` allows a range of one allocation to overlap itself.
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, bytes) };
        Ok(true)
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

    unsafe fn gemm(
        &self,
        g: &Sgemm,
        inputs: GemmInputs,
        a: u64,
        b: u64,
        c: u64,
    ) -> Result<(), CudaError> {
        let (a_len, b_len) = (
            extent(g.transa, g.m, g.k, g.lda),
            extent(g.transb, g.k, g.n, g.ldb),
        );
        let c_len = extent(Op::N, g.m, g.n, g.ldc);
        // SAFETY: the caller's contract: the matrices of `g` are there; C
        // does not overlap A or B in any product.
        let c = unsafe { std::slice::from_raw_parts_mut(c as *mut f32, c_len) };
        match inputs {
            GemmInputs::F32 => {
                // SAFETY: as above.
                let (a, b) = unsafe { (host::<f32>(a, a_len), host::<f32>(b, b_len)) };
                emulated_sgemm(g, a, b, c);
            }
            GemmInputs::Bf16 => {
                // Every bf16 value is an f32 with its low 16 bits zero: the
                // f32 product of the widened inputs is the bf16 product.
                let widen = |h: &[u16]| -> Vec<f32> {
                    h.iter()
                        .map(|&h| f32::from_bits(u32::from(h) << 16))
                        .collect()
                };
                // SAFETY: as above.
                let (a, b) = unsafe { (host::<u16>(a, a_len), host::<u16>(b, b_len)) };
                emulated_sgemm(g, &widen(a), &widen(b), c);
            }
        }
        Ok(())
    }
}
