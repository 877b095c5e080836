//! The CUDA kernels of the `cuda` device (feature `cuda`) and what runs them
//! without a GPU. Design and verification: `docs/cuda.md`.
//!
//! - `kernels/*.cu`: CUDA C, one concept per file, `extern "C"` kernels that
//!   mirror the CPU kernels of `cptrain::kernels` and `cptrain::optim`
//!   (listed in [`sources::SOURCES`], found by the build script).
//! - [`nvrtc`]: compiles every source with NVRTC (loaded at run time) for
//!   `sm_80` and `sm_90`.
//! - [`launch`]: the launch configuration of every kernel (grid, block,
//!   shared memory) and the structs passed by value, used by the real launch
//!   and by the emulation alike.
//! - [`emu`]: cuda-emu, the same sources compiled for the host (`emu/cuda_emu.h`)
//!   and run with CUDA's execution model, behind one safe function per
//!   operation.
//! - [`gemm`]: the trainer's row-major GEMMs as column-major cuBLAS `sgemm`
//!   calls, and an emulated `sgemm`.
//! - [`peak`]: the GPU's matmul rate at the run's precision, for MFU.
//! - [`device`]: the `Kernels` of the `cuda` and `cuda-emu` devices, written
//!   once over `launcher::Launcher` (the GPU through the driver and cuBLAS in
//!   `driver`, or [`emu::Emulator`]) and the shared host orchestration of every
//!   operation in `ops`.

mod buckets;
pub mod device;
mod driver;
pub mod emu;
mod error;
pub mod gemm;
pub mod launch;
mod launcher;
pub mod nvrtc;
mod ops;
pub mod peak;
mod peer;
pub mod sources;

pub use buckets::RowBuckets;
pub use error::CudaError;
