// cuda-emu: compiles the project's CUDA C kernels (plugins/src/cuda/kernels)
// with a host C++ compiler and runs them with CUDA's execution model.
//
// A launch runs its blocks one after another on the calling OS thread. The
// threads of a block are ucontext fibers on that OS thread: each runs until
// it reaches a barrier (`__syncthreads`, `__syncwarp`, or one of the two
// barriers inside a warp shuffle), then the scheduler resumes the next one.
// Because one OS thread runs one whole block at a time, `__shared__` is a
// `static thread_local` (one instance per running block, stale across blocks
// as on a GPU) and the thread/block indices are read from the current fiber.
//
// Limits (see docs/cuda.md): no atomics, no cooperative groups, the `mask`
// of the `_sync` intrinsics is ignored (all live lanes of the warp take
// part), dynamic shared memory comes through `CPT_DYNAMIC_SHARED` (common.cuh)
// instead of `extern __shared__`, and a barrier some threads never reach is
// reported as an error instead of hanging.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#define CPT_EMU 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __align__(n) alignas(n)

struct uint3 {
    unsigned int x, y, z;
};
typedef uint3 dim3;

namespace emu {

/// A launch as the Rust side describes it (`#[repr(C)]` there).
struct Launch {
    unsigned int grid[3];
    unsigned int block[3];
    unsigned long long shared_bytes;
};

/// Outcome codes returned to Rust.
enum Status : int {
    OK = 0,
    BAD_CONFIG = 1,
    DIVERGENT_BARRIER = 2,
};

const uint3& thread_idx();
const uint3& block_idx();
const uint3& block_dim();
const uint3& grid_dim();
void* dynamic_shared();
void sync_block();
void sync_warp();
/// Publishes `bytes` bytes of this lane's value and copies lane `src`'s
/// value (of the same warp) into `out`; a `src` outside the warp, or -1,
/// leaves `out` untouched.
void warp_exchange(const void* value, void* out, size_t bytes, int src);
int lane_id();

int run(const Launch& launch, void (*body)(void*), void* ctx);

template <typename... A, size_t... I>
void call_unpacked(void (*kernel)(A...), void** params, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_reference_t<A>*>(params[I])...);
}

/// Runs `kernel` over the launch with cuLaunchKernel-style parameters: one
/// pointer per kernel argument, pointing at the argument's value.
template <typename... A>
int launch_with_params(void (*kernel)(A...), const Launch& launch, void** params) {
    struct Ctx {
        void (*kernel)(A...);
        void** params;
    } ctx{kernel, params};
    return run(
        launch,
        [](void* p) {
            auto* c = static_cast<Ctx*>(p);
            call_unpacked(c->kernel, c->params, std::index_sequence_for<A...>{});
        },
        &ctx);
}

template <typename T>
T shuffle_from(T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    T out = v;
    warp_exchange(&v, &out, sizeof(T), src);
    return out;
}

}  // namespace emu

#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())
#define warpSize 32

inline void __syncthreads() { ::emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::emu::sync_warp(); }

template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    int lane = ::emu::lane_id();
    int src = lane ^ lane_mask;
    if (src / width != lane / width) src = -1;
    return ::emu::shuffle_from(v, src);
}

template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = ::emu::lane_id();
    int src = (lane % width) + (int)delta < width ? lane + (int)delta : -1;
    return ::emu::shuffle_from(v, src);
}

template <typename T>
T __shfl_sync(unsigned, T v, int src_lane, int width = 32) {
    int lane = ::emu::lane_id();
    return ::emu::shuffle_from(v, (lane / width) * width + src_lane % width);
}

inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}
inline int __float_as_int(float f) {
    int i;
    memcpy(&i, &f, sizeof i);
    return i;
}
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

// One exported entry point per kernel, called from Rust.
#define CPT_EMU_EXPORT(name)                                                          \
    extern "C" int cpt_emu_##name(const ::emu::Launch* launch, void** params) {       \
        return ::emu::launch_with_params(name, *launch, params);                      \
    }
