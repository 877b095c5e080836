// Residual connection with the projection's bias (cptrain::kernels::residual_add).
#include "common.cuh"

/// out = a + (b + bias), bias per `width`-wide row.
extern "C" __global__ void residual_add(const float* __restrict__ a, const float* __restrict__ b,
                                        const float* __restrict__ bias, float* __restrict__ out, long long n,
                                        int width) {
    for (long long i = grid_index(); i < n; i += grid_stride()) out[i] = a[i] + (b[i] + bias[i % width]);
}

/// out = src + bias per row (bias broadcast over `width`-wide rows), or out = bias without src
/// (src null): the bias the linear forward's GEMM accumulates onto.
extern "C" __global__ void bias_add(const float* __restrict__ src, const float* __restrict__ bias,
                                    float* __restrict__ out, long long n, int width) {
    for (long long i = grid_index(); i < n; i += grid_stride())
        out[i] = src ? src[i] + bias[i % width] : bias[i % width];
}
