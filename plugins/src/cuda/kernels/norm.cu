// Gradient clipping by global norm (cptrain::optim::{sum_of_squares, scale}):
// a deterministic sum of squares in f64, in two stages (a fixed grid of
// per-block partials, then one block summing them in order), and a scale.
#include "common.cuh"

/// partials[block] = Σ x² (in f64) over a grid-stride share of x.
extern "C" __global__ void sum_squares_partials(const float* __restrict__ x, long long n,
                                                double* __restrict__ partials) {
    __shared__ double scratch[32];
    double sum = 0.0;
    for (long long i = grid_index(); i < n; i += grid_stride()) sum += (double)x[i] * (double)x[i];
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

/// out[0] = Σ partials, in one block.
extern "C" __global__ void sum_partials(const double* __restrict__ partials, int count, double* __restrict__ out) {
    __shared__ double scratch[32];
    double sum = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) out[0] = sum;
}

/// x *= factor.
extern "C" __global__ void scale_values(float* __restrict__ x, long long n, float factor) {
    for (long long i = grid_index(); i < n; i += grid_stride()) x[i] *= factor;
}
