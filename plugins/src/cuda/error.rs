/// A failure of a CUDA kernel call, its compilation or its emulation.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CudaError {
    /// Buffers or sizes that do not fit the kernel.
    #[error("kernel `{kernel}`: {problem}")]
    Shape {
        /// The kernel (or operation) called.
        kernel: &'static str,
        /// What does not fit, with the sizes.
        problem: String,
    },
    /// The emulator refused or could not finish a launch.
    #[error("cuda-emu: kernel `{kernel}`: {problem}")]
    Emulation {
        /// The kernel launched.
        kernel: String,
        /// What went wrong.
        problem: &'static str,
    },
    /// The NVRTC library cannot be loaded.
    #[error(
        "the NVRTC library (libnvrtc.so.12) cannot be loaded; install the CUDA 12 toolkit \
         or the `nvidia-cuda-nvrtc-cu12` wheel and put its lib directory on LD_LIBRARY_PATH"
    )]
    NvrtcMissing,
    /// A device allocation failed.
    #[error("out of device memory allocating {bytes} bytes")]
    OutOfMemory {
        /// The size asked for.
        bytes: usize,
    },
    /// A call of the CUDA driver or cuBLAS failed.
    #[error("{call}: {message}")]
    Driver {
        /// What was called (`cuLaunchKernel(attention_forward)`, ...).
        call: String,
        /// The library's error name and text.
        message: String,
    },
    /// The machine cannot run the `cuda` device: what is missing.
    #[error("kernels.device = \"cuda\": {0}")]
    Unavailable(String),
    /// A kernel was given a view of memory that is not this device's.
    #[error(
        "a {device} kernel was given {found}; every tensor must be a buffer of the rank's \
         device (kernels.device)"
    )]
    ForeignMemory {
        /// This device.
        device: String,
        /// What it was given (host memory, another device's memory).
        found: String,
    },
    /// NVRTC rejected a source.
    #[error("NVRTC failed to compile {file} for {arch}: {log}")]
    Compile {
        /// The kernel source file.
        file: &'static str,
        /// The target architecture (`sm_80`, ...).
        arch: String,
        /// NVRTC's log or error.
        log: String,
    },
}
