// Helpers shared by every kernel source: constants, dynamic shared memory,
// warp and block reductions. Each `.cu` file includes it; the NVRTC
// compilation (nvrtc.rs) pastes it in place of the include, since NVRTC
// gets no include path.
#ifndef CPT_COMMON_CUH
#define CPT_COMMON_CUH

#define CPT_FULL_MASK 0xffffffffu
#define CPT_INF __int_as_float(0x7f800000)
/// `cptrain::kernels::IGNORE_TARGET`: no loss at this position.
#define CPT_IGNORE_TARGET 0xffffffffu
/// `cptrain::kernels::NO_TOKEN_ROW`: a token whose `wte` row another rank holds.
#define CPT_NO_TOKEN_ROW 0xffffffffu

// The launch's dynamic shared memory as a `type*` named `name`.
#ifdef CPT_EMU
#define CPT_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::emu::dynamic_shared())
#else
#define CPT_DYNAMIC_SHARED(type, name)                                   \
    extern __shared__ __align__(16) unsigned char cpt_dynamic_shared[]; \
    type* name = reinterpret_cast<type*>(cpt_dynamic_shared)
#endif

/// Sum over the 32 lanes of a warp; every lane gets the same value.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(CPT_FULL_MASK, v, offset);
    return v;
}

/// Maximum over the 32 lanes of a warp; every lane gets the same value.
__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(CPT_FULL_MASK, v, offset));
    return v;
}

/// The thread's index within its block, x fastest.
__device__ __forceinline__ int block_thread() {
    return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

/// Sum over all threads of the block (a whole number of warps), returned to
/// every thread in the same fixed order, so the result is deterministic.
/// `scratch` is 32 elements of shared memory, free between calls.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
    int tid = block_thread();
    int warps = (int)(blockDim.x * blockDim.y * blockDim.z + 31) / 32;
    v = warp_sum(v);
    __syncthreads();
    if (tid % 32 == 0) scratch[tid / 32] = v;
    __syncthreads();
    return warp_sum(tid % 32 < warps ? scratch[tid % 32] : T(0));
}

/// Maximum over all threads of the block, as `block_sum`.
__device__ __forceinline__ float block_max(float v, float* scratch) {
    int tid = block_thread();
    int warps = (int)(blockDim.x * blockDim.y * blockDim.z + 31) / 32;
    v = warp_max(v);
    __syncthreads();
    if (tid % 32 == 0) scratch[tid / 32] = v;
    __syncthreads();
    return warp_max(tid % 32 < warps ? scratch[tid % 32] : -CPT_INF);
}

/// The global index of this thread in a 1-D grid and the grid's stride.
__device__ __forceinline__ long long grid_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() {
    return (long long)gridDim.x * blockDim.x;
}

#endif
