//! The matmul rate of a GPU at the run's precision, measured at startup:
//! the peak MFU is reported against on `kernels.device = "cuda"`.

use std::time::Instant;

use cptrain::kernels::Precision;

use super::CudaError;
use super::driver::{GpuLauncher, probe};
use super::gemm::{GemmInputs, Op, Operand, Sgemm};
use super::launcher::{Launcher, Scratch};

/// Side of the timed square products: 4096³ multiply-adds, 137 GFLOP, a
/// fraction of a millisecond to a few milliseconds on data-centre GPUs.
const SIDE: usize = 4096;
/// Products timed after one untimed warm-up product.
const REPEATS: usize = 10;

/// GFLOP/s of square products on GPU `gpu` with `precision`'s inputs (f32
/// inputs rounded to TF32 when `tf32`): what cuBLAS reaches on the shapes
/// it runs best, the same kind of peak the CPU probe measures.
pub fn measure_gflops(gpu: usize, precision: Precision, tf32: bool) -> Result<f64, CudaError> {
    probe(Some(gpu))?;
    let launcher = GpuLauncher::open(gpu, tf32)?;
    let inputs = match precision {
        Precision::F32 => GemmInputs::F32,
        Precision::Bf16 => GemmInputs::Bf16,
    };
    time_products(&launcher, inputs, SIDE, REPEATS)
}

/// GFLOP/s of `repeats` products of side `side` on `dev`, timed from the
/// first queued product to the end of the last (a read waits for them).
/// The operands hold ones: a constant, not zeros, which some GPUs multiply
/// at lower power and so faster.
fn time_products(
    dev: &dyn Launcher,
    inputs: GemmInputs,
    side: usize,
    repeats: usize,
) -> Result<f64, CudaError> {
    let elements = side * side;
    // One in f32, or two bf16 ones to a word.
    let (words, one) = match inputs {
        GemmInputs::F32 => (elements, 1.0f32.to_bits()),
        GemmInputs::Bf16 => (elements.div_ceil(2), 0x3f80_3f80),
    };
    let a = Scratch::from_host(dev, &vec![one; words])?;
    let b = Scratch::from_host(dev, &vec![one; words])?;
    let c = Scratch::<f32>::zeroed(dev, elements)?;
    let product = Sgemm {
        transa: Op::N,
        transb: Op::N,
        m: side,
        n: side,
        k: side,
        a: Operand::X,
        lda: side,
        b: Operand::W,
        ldb: side,
        ldc: side,
        alpha: 1.0,
        beta: 0.0,
    };
    // SAFETY: `a`, `b` and `c` hold `side × side` matrices of their types.
    let run = || unsafe { dev.gemm(&product, inputs, a.addr(), b.addr(), c.addr()) };
    run()?;
    let mut last = [0u8; 4];
    // SAFETY: `c` holds at least one value.
    unsafe { dev.read(c.addr(), &mut last)? };
    let start = Instant::now();
    for _ in 0..repeats {
        run()?;
    }
    // SAFETY: as above.
    unsafe { dev.read(c.addr(), &mut last)? };
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    // A product of ones sums `side` ones (exact in f32 and bf16 inputs):
    // anything else is a product that did not run as timed.
    let value = f32::from_le_bytes(last);
    if value != side as f32 {
        return Err(CudaError::Driver {
            call: "the matmul rate probe".into(),
            message: format!("a product of ones of side {side} gave {value}, not {side}"),
        });
    }
    let side = side as f64;
    Ok(2.0 * side * side * side * repeats as f64 / seconds / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::emu::Emulator;

    /// The timing runs end to end on the emulator (the GPU path differs
    /// only in its launcher), in both precisions, and checks what the
    /// products computed.
    #[test]
    fn products_of_ones_are_timed() {
        for inputs in [GemmInputs::F32, GemmInputs::Bf16] {
            let rate = time_products(&Emulator, inputs, 24, 2).unwrap();
            assert!(rate.is_finite() && rate > 0.0, "{inputs:?}: {rate}");
        }
    }
}
