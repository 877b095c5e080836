//! The GPU as a [`Launcher`]: device memory from the CUDA driver's
//! stream-ordered pool, the kernels compiled by NVRTC for the device's
//! architecture (once per device and process), launched on one stream per
//! kernel set, and the GEMMs as cuBLAS `sgemm` calls on the same stream.
//!
//! `cudarc` panics when a library it calls cannot be loaded, so
//! [`probe`] checks every library, the device count and the compute
//! capability first; nothing here calls `cudarc` before it passed.

use std::any::Any;
use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use cudarc::cublas::{CudaBlas, sys as blas_sys};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, result, sys};
use cudarc::nvrtc::Ptx;

use super::gemm::{GemmInputs, Op, Sgemm};
use super::launch::{LaunchConfig, to_i32};
use super::launcher::Launcher;
use super::sources::{KernelSource, SOURCES};
use super::{CudaError, nvrtc, peer};

/// The oldest compute capability the kernels are compiled for (`sm_80`).
const MIN_CAPABILITY: (i32, i32) = (8, 0);

fn driver_error(call: impl Into<String>, e: impl std::fmt::Display) -> CudaError {
    CudaError::Driver {
        call: call.into(),
        message: e.to_string(),
    }
}

fn unavailable(what: impl Into<String>) -> CudaError {
    CudaError::Unavailable(what.into())
}

/// The part of [`gpu_probe`](super::device::gpu_probe) every user of a GPU
/// needs: the driver library loads, initializes, and GPU `gpu` (any with
/// `None`) exists. Returns the device count.
pub fn driver_probe(gpu: Option<usize>) -> Result<usize, CudaError> {
    // SAFETY: only tries to dlopen the library under its candidate names.
    if !unsafe { sys::is_culib_present() } {
        return Err(unavailable(
            "the CUDA driver library (libcuda.so.1) cannot be loaded: no NVIDIA driver is \
             installed, or its libraries are not visible in this container (nvidia-container-toolkit: \
             run with --gpus all)",
        ));
    }
    result::init().map_err(|e| {
        unavailable(format!(
            "cuInit failed ({e}): the driver cannot reach a GPU"
        ))
    })?;
    let count = result::device::get_count().map_err(|e| driver_error("cuDeviceGetCount", e))?;
    let count = usize::try_from(count).unwrap_or(0);
    if count == 0 {
        return Err(unavailable(
            "the CUDA driver reports no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)",
        ));
    }
    let gpu_index = gpu.unwrap_or(0);
    if gpu_index >= count {
        return Err(unavailable(format!(
            "GPU {gpu_index} does not exist: the driver reports {count} GPU(s), 0..{}; set \
             kernels.gpu below {count}",
            count - 1
        )));
    }
    Ok(count)
}

/// Checks, without panicking, that this machine can run the `cuda` device
/// on GPU `gpu` (`None`: that at least one GPU is there): the driver
/// library, a device, its compute capability, NVRTC and cuBLAS. Returns
/// the device count.
pub fn probe(gpu: Option<usize>) -> Result<usize, CudaError> {
    let count = driver_probe(gpu)?;
    let gpu_index = gpu.unwrap_or(0);
    let capability = compute_capability(gpu_index)?;
    if capability < MIN_CAPABILITY {
        return Err(unavailable(format!(
            "GPU {gpu_index} has compute capability {}.{}; the kernels need {}.{} or later \
             (A100, H100, H200, ...)",
            capability.0, capability.1, MIN_CAPABILITY.0, MIN_CAPABILITY.1
        )));
    }
    if !nvrtc::available() {
        return Err(unavailable(CudaError::NvrtcMissing.to_string()));
    }
    // SAFETY: as above.
    if !unsafe { blas_sys::is_culib_present() } {
        return Err(unavailable(
            "the cuBLAS library (libcublas.so.12) cannot be loaded; install the CUDA 12 \
             toolkit or the `nvidia-cublas-cu12` wheel and put its lib directory on \
             LD_LIBRARY_PATH",
        ));
    }
    Ok(count)
}

/// (major, minor) compute capability of GPU `gpu`; the driver is initialized.
fn compute_capability(gpu: usize) -> Result<(i32, i32), CudaError> {
    let index = to_i32(gpu, "cuDeviceGet", "kernels.gpu")?;
    let device = result::device::get(index).map_err(|e| driver_error("cuDeviceGet", e))?;
    let attribute = |a| {
        // SAFETY: `device` is a valid device handle.
        unsafe { result::device::get_attribute(device, a) }
            .map_err(|e| driver_error("cuDeviceGetAttribute", e))
    };
    use sys::CUdevice_attribute::*;
    Ok((
        attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
        attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
    ))
}

/// A GPU's context and every kernel, compiled and loaded once per process.
struct LoadedDevice {
    ctx: Arc<CudaContext>,
    functions: HashMap<&'static str, CudaFunction>,
}

/// The devices loaded so far, by index.
static LOADED: Mutex<Vec<(usize, Arc<LoadedDevice>)>> = Mutex::new(Vec::new());

/// What NVRTC compiles for a GPU of `capability` ([`nvrtc::target_for`]),
/// decided once per GPU.
fn gpu_target(capability: (i32, i32)) -> Result<nvrtc::Target, CudaError> {
    let target = nvrtc::target_for(capability, &nvrtc::supported_archs()?);
    if let nvrtc::Target::Ptx(arch) = &target {
        tracing::warn!(
            capability = ?capability,
            arch,
            "the NVRTC library predates this GPU: its kernels are PTX the driver compiles"
        );
    }
    Ok(target)
}

/// The code of `source` for `target`.
fn module_code(source: &'static KernelSource, target: &nvrtc::Target) -> Result<Ptx, CudaError> {
    match target {
        nvrtc::Target::Cubin(arch) => Ok(Ptx::from_binary(nvrtc::compile_cubin(source, arch)?)),
        nvrtc::Target::Ptx(arch) => nvrtc::compile(source, arch),
    }
}

impl LoadedDevice {
    /// GPU `gpu` with every kernel loaded, from the cache or compiled now.
    fn get(gpu: usize) -> Result<Arc<Self>, CudaError> {
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, device)) = loaded.iter().find(|(i, _)| *i == gpu) {
            return Ok(device.clone());
        }
        let ctx = CudaContext::new(gpu)
            .map_err(|e| driver_error(format!("CUDA context of GPU {gpu}"), e))?;
        if !ctx.has_async_alloc() {
            return Err(unavailable(format!(
                "GPU {gpu} has no stream-ordered memory pool (cuMemAllocAsync), which the \
                 device's memory needs; update the NVIDIA driver"
            )));
        }
        keep_pool_memory(&ctx)?;
        let target = gpu_target(compute_capability(gpu)?)?;
        let mut functions = HashMap::new();
        for source in SOURCES {
            let module = ctx
                .load_module(module_code(source, &target)?)
                .map_err(|e| driver_error(format!("cuModuleLoadData({})", source.file), e))?;
            for &kernel in source.kernels {
                let function = module
                    .load_function(kernel)
                    .map_err(|e| driver_error(format!("cuModuleGetFunction({kernel})"), e))?;
                functions.insert(kernel, function);
            }
        }
        let device = Arc::new(LoadedDevice { ctx, functions });
        loaded.push((gpu, device.clone()));
        Ok(device)
    }
}

/// Keeps freed memory in the device's default pool instead of returning it
/// to the driver at every synchronization (the default threshold is 0), so
/// the scratch buffers of each step are reused. And forbids the pool to
/// make one stream wait for another to reuse memory freed there: a
/// transfer stream's allocation (`Launcher::fetch`, `alloc_beside`) would
/// otherwise wait for the kernels before a free on the main stream, which
/// is what the transfer stream is to overlap. Memory whose free has
/// completed is still reused across streams.
fn keep_pool_memory(ctx: &CudaContext) -> Result<(), CudaError> {
    use sys::CUmemPool_attribute::{
        CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES,
    };
    // SAFETY: the device handle is the context's; the release threshold is
    // a u64, the reuse flag an int (the driver's types for them).
    unsafe {
        let pool = result::device::get_default_mem_pool(ctx.cu_device())
            .map_err(|e| driver_error("cuDeviceGetDefaultMemPool", e))?;
        let mut threshold = u64::MAX;
        result::mem_pool::set_attribute(
            pool,
            CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&raw mut threshold).cast::<c_void>(),
        )
        .map_err(|e| driver_error("cuMemPoolSetAttribute(RELEASE_THRESHOLD)", e))?;
        let mut internal_dependencies: i32 = 0;
        result::mem_pool::set_attribute(
            pool,
            CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES,
            (&raw mut internal_dependencies).cast::<c_void>(),
        )
        .map_err(|e| {
            driver_error(
                "cuMemPoolSetAttribute(REUSE_ALLOW_INTERNAL_DEPENDENCIES)",
                e,
            )
        })
    }
}

/// One kernel set's view of a GPU: its own stream and cuBLAS handle, and
/// a transfer stream for the messages it fetches from other ranks
/// ([`Launcher::fetch`]), so they arrive while its kernels run.
pub struct GpuLauncher {
    device: Arc<LoadedDevice>,
    stream: Arc<CudaStream>,
    transfer: Arc<CudaStream>,
    blas: CudaBlas,
}

impl GpuLauncher {
    /// A launcher on GPU `gpu`, which [`probe`] accepted; `tf32` lets
    /// cuBLAS round GEMM inputs to TF32.
    pub fn open(gpu: usize, tf32: bool) -> Result<Self, CudaError> {
        let device = LoadedDevice::get(gpu)?;
        let new_stream =
            || (device.ctx.new_stream()).map_err(|e| driver_error("cuStreamCreate", e));
        let (stream, transfer) = (new_stream()?, new_stream()?);
        let blas = CudaBlas::new(stream.clone()).map_err(|e| driver_error("cublasCreate", e))?;
        let mode = if tf32 {
            blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: the handle is live.
        unsafe { blas_sys::cublasSetMathMode(*blas.handle(), mode) }
            .result()
            .map_err(|e| driver_error("cublasSetMathMode", e))?;
        Ok(GpuLauncher {
            device,
            stream,
            transfer,
            blas,
        })
    }

    /// The GPU's index.
    pub fn ordinal(&self) -> usize {
        self.device.ctx.ordinal()
    }

    /// Makes the device's context current on the calling thread (ranks
    /// call from their own threads).
    fn bind(&self) -> Result<(), CudaError> {
        self.device
            .ctx
            .bind_to_thread()
            .map_err(|e| driver_error("cuCtxSetCurrent", e))
    }

    fn stream(&self) -> sys::CUstream {
        self.stream.cu_stream()
    }

    /// Queues on `stream` a copy of `bytes` bytes at `src` of `source`
    /// (this GPU or a peer) to `dst` of this GPU; the context is bound.
    ///
    /// # Safety
    /// Both ranges are device memory of the two launchers, the source's
    /// values written and kept until the copy is done.
    unsafe fn copy_on(
        &self,
        stream: sys::CUstream,
        source: &GpuLauncher,
        src: u64,
        dst: u64,
        bytes: usize,
    ) -> Result<(), CudaError> {
        let (ctx, source_ctx) = (&self.device.ctx, &source.device.ctx);
        // SAFETY: the caller's contract.
        unsafe {
            if Arc::ptr_eq(&self.device, &source.device) {
                result::memcpy_dtod_async(dst, src, bytes, stream)
                    .map_err(|e| driver_error("cuMemcpyDtoDAsync", e))
            } else {
                peer::open_pool(source_ctx.cu_device(), ctx.cu_device())?;
                let (to, from) = (ctx.cu_ctx(), source_ctx.cu_ctx());
                result::memcpy_peer_async(to, dst, from, src, bytes, stream)
                    .map_err(|e| driver_error("cuMemcpyPeerAsync", e))
            }
        }
    }
}

/// `cuMemAllocAsync` of `bytes` bytes on `stream`.
///
/// # Safety
/// `stream` is a live stream of the context bound to the calling thread.
unsafe fn alloc_on(stream: sys::CUstream, bytes: usize) -> Result<u64, CudaError> {
    // SAFETY: the caller's contract.
    unsafe { result::malloc_async(stream, bytes) }.map_err(|e| match e.0 {
        sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => CudaError::OutOfMemory { bytes },
        _ => driver_error("cuMemAllocAsync", e),
    })
}

fn op(o: Op) -> blas_sys::cublasOperation_t {
    match o {
        Op::N => blas_sys::cublasOperation_t::CUBLAS_OP_N,
        Op::T => blas_sys::cublasOperation_t::CUBLAS_OP_T,
    }
}

impl Launcher for GpuLauncher {
    fn alloc(&self, bytes: usize) -> Result<u64, CudaError> {
        self.bind()?;
        // SAFETY: a live stream of the bound context.
        unsafe { alloc_on(self.stream(), bytes) }
    }

    fn alloc_beside(&self, bytes: usize) -> Result<u64, CudaError> {
        self.bind()?;
        // SAFETY: a live stream of the bound context.
        let addr = unsafe { alloc_on(self.transfer.cu_stream(), bytes)? };
        // Once the allocating stream is synchronized, any stream may use it.
        if let Err(e) = self.transfer.synchronize() {
            // SAFETY: allocated above on this stream, not handed out.
            let _ = unsafe { result::free_async(addr, self.transfer.cu_stream()) };
            return Err(driver_error("cuStreamSynchronize", e));
        }
        Ok(addr)
    }

    unsafe fn free(&self, addr: u64, _bytes: usize) {
        if self.bind().is_ok() {
            // SAFETY: allocated on this stream (the caller's contract). A
            // failure here leaves the memory to the context's teardown.
            let _ = unsafe { result::free_async(addr, self.stream()) };
        }
    }

    /// Page-locked and portable (usable with every context of the
    /// process), zeroed once here.
    fn alloc_host(&self, bytes: usize) -> Result<NonNull<u8>, CudaError> {
        self.bind()?;
        // SAFETY: a plain allocation; the pointer is checked below.
        let ptr = unsafe { result::malloc_host(bytes, sys::CU_MEMHOSTALLOC_PORTABLE) }
            .map_err(|e| driver_error(format!("cuMemHostAlloc({bytes} bytes)"), e))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(CudaError::OutOfMemory { bytes })?;
        // SAFETY: `bytes` bytes were just allocated at `ptr`.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, bytes) };
        Ok(ptr)
    }

    unsafe fn free_host(&self, ptr: NonNull<u8>, _bytes: usize) {
        if self.bind().is_ok() {
            // SAFETY: from `alloc_host` (the caller's contract). A failure
            // leaves the memory to the process's exit.
            let _ = unsafe { result::free_host(ptr.as_ptr().cast()) };
        }
    }

    unsafe fn write(&self, src: &[u8], dst: u64) -> Result<(), CudaError> {
        self.bind()?;
        // SAFETY: `dst` holds `src.len()` bytes (the caller's contract).
        // From pageable memory the copy returns once `src` was staged, so
        // the caller may drop it; page-locked staging memory is kept until
        // the stream is synchronized (`pinned::Staging`'s drop).
        unsafe { result::memcpy_htod_async(dst, src, self.stream()) }
            .map_err(|e| driver_error("cuMemcpyHtoDAsync", e))
    }

    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), CudaError> {
        self.bind()?;
        // SAFETY: `src` holds `dst.len()` bytes (the caller's contract).
        unsafe { result::memcpy_dtoh_async(dst, src, self.stream()) }
            .map_err(|e| driver_error("cuMemcpyDtoHAsync", e))?;
        self.stream
            .synchronize()
            .map_err(|e| driver_error("cuStreamSynchronize", e))
    }

    fn synchronize(&self) -> Result<(), CudaError> {
        self.stream
            .synchronize()
            .map_err(|e| driver_error("cuStreamSynchronize", e))
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
        let Some(source) = source.as_any().downcast_ref::<GpuLauncher>() else {
            return Ok(false);
        };
        self.bind()?;
        // SAFETY: the caller's contract.
        unsafe { self.copy_on(self.stream(), source, src, dst, bytes)? };
        Ok(true)
    }

    /// Allocates and copies on the transfer stream and waits for it alone.
    /// Memory allocated there may be used and freed on the main stream
    /// once the transfer stream is synchronized, which this does.
    unsafe fn fetch(
        &self,
        source: &dyn Launcher,
        src: u64,
        bytes: usize,
    ) -> Result<Option<u64>, CudaError> {
        let Some(source) = source.as_any().downcast_ref::<GpuLauncher>() else {
            return Ok(None);
        };
        self.bind()?;
        let transfer = self.transfer.cu_stream();
        // SAFETY: a live stream of the bound context.
        let dst = unsafe { alloc_on(transfer, bytes)? };
        // SAFETY: `dst` holds `bytes` bytes; `src` is the caller's contract.
        let copied = unsafe { self.copy_on(transfer, source, src, dst, bytes) }.and_then(|()| {
            (self.transfer.synchronize()).map_err(|e| driver_error("cuStreamSynchronize", e))
        });
        if let Err(e) = copied {
            // SAFETY: allocated above on this stream, not handed out.
            let _ = unsafe { result::free_async(dst, transfer) };
            return Err(e);
        }
        Ok(Some(dst))
    }

    unsafe fn zero(&self, dst: u64, bytes: usize) -> Result<(), CudaError> {
        self.bind()?;
        // SAFETY: `dst` holds `bytes` bytes (the caller's contract).
        unsafe { result::memset_d8_async(dst, 0, bytes, self.stream()) }
            .map_err(|e| driver_error("cuMemsetD8Async", e))
    }

    unsafe fn launch(
        &self,
        kernel: &'static str,
        config: &LaunchConfig,
        params: &mut [*mut c_void],
    ) -> Result<(), CudaError> {
        self.bind()?;
        let function = self
            .device
            .functions
            .get(kernel)
            .ok_or_else(|| CudaError::Shape {
                kernel,
                problem: "no such kernel in the compiled sources".into(),
            })?;
        let [gx, gy, gz] = config.grid;
        let [bx, by, bz] = config.block;
        // SAFETY: the caller's contract (argument types and buffers).
        unsafe {
            result::launch_kernel(
                function.cu_function(),
                (gx, gy, gz),
                (bx, by, bz),
                config.shared_bytes,
                self.stream(),
                params,
            )
        }
        .map_err(|e| driver_error(format!("cuLaunchKernel({kernel})"), e))
    }

    unsafe fn gemm(
        &self,
        g: &Sgemm,
        inputs: GemmInputs,
        a: u64,
        b: u64,
        c: u64,
    ) -> Result<(), CudaError> {
        self.bind()?;
        let int = |v: usize, what: &str| to_i32(v, "gemm", what);
        let (m, n, k) = (int(g.m, "m")?, int(g.n, "n")?, int(g.k, "k")?);
        let (lda, ldb, ldc) = (int(g.lda, "lda")?, int(g.ldb, "ldb")?, int(g.ldc, "ldc")?);
        let (alpha, beta) = (g.alpha, g.beta);
        let (transa, transb) = (op(g.transa), op(g.transb));
        let handle = *self.blas.handle();
        match inputs {
            // SAFETY: the handle runs on this launcher's stream; the
            // matrices are where the caller says (its contract).
            GemmInputs::F32 => unsafe {
                cudarc::cublas::result::sgemm(
                    handle,
                    transa,
                    transb,
                    m,
                    n,
                    k,
                    &alpha,
                    a as *const f32,
                    lda,
                    b as *const f32,
                    ldb,
                    &beta,
                    c as *mut f32,
                    ldc,
                )
            }
            .map_err(|e| driver_error("cublasSgemm", e)),
            // SAFETY: as above; alpha and beta are f32, as
            // CUBLAS_COMPUTE_32F reads them.
            GemmInputs::Bf16 => unsafe {
                use blas_sys::cudaDataType::{CUDA_R_16BF, CUDA_R_32F};
                cudarc::cublas::result::gemm_ex(
                    handle,
                    transa,
                    transb,
                    m,
                    n,
                    k,
                    (&alpha as *const f32).cast(),
                    a as *const c_void,
                    CUDA_R_16BF,
                    lda,
                    b as *const c_void,
                    CUDA_R_16BF,
                    ldb,
                    (&beta as *const f32).cast(),
                    c as *mut c_void,
                    CUDA_R_32F,
                    ldc,
                    blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
            }
            .map_err(|e| driver_error("cublasGemmEx (bf16)", e)),
        }
    }
}
