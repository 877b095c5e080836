// Fills, copies and sums of whole buffers (cptrain's Kernels::fill, copy,
// add_assign, fill_columns): grid-stride loops, one element per thread step.
#include "common.cuh"

/// x[i] = value.
extern "C" __global__ void fill_values(float* __restrict__ x, long long n, float value) {
    for (long long i = grid_index(); i < n; i += grid_stride()) x[i] = value;
}

/// dst[i] = src[i].
extern "C" __global__ void copy_values(const float* __restrict__ src, float* __restrict__ dst, long long n) {
    for (long long i = grid_index(); i < n; i += grid_stride()) dst[i] = src[i];
}

/// acc[i] += x[i].
extern "C" __global__ void add_values(float* __restrict__ acc, const float* __restrict__ x, long long n) {
    for (long long i = grid_index(); i < n; i += grid_stride()) acc[i] += x[i];
}

/// Runs of len values: run r copies src[starts[2r] ..] to dst[starts[2r + 1] ..];
/// n = runs · len elements are copied (Kernels::copy_runs).
extern "C" __global__ void copy_runs(const float* __restrict__ src, float* __restrict__ dst,
                                     const long long* __restrict__ starts, long long len, long long n) {
    for (long long i = grid_index(); i < n; i += grid_stride()) {
        long long r = i / len;
        long long j = i - r * len;
        dst[starts[2 * r + 1] + j] = src[starts[2 * r] + j];
    }
}

/// Columns `first .. first + count` of every `width`-wide row of x = value;
/// n = rows · count elements are written.
extern "C" __global__ void fill_columns(float* __restrict__ x, long long n, int width, int first, int count,
                                        float value) {
    for (long long i = grid_index(); i < n; i += grid_stride()) {
        long long row = i / count;
        x[row * width + first + (int)(i % count)] = value;
    }
}
