// Deterministic column sums of a row-major [rows, C] matrix in two stages:
// per row chunk partials, then one ordered sum per column. Used for the bias
// gradient of linear layers (cuBLAS computes no column sums) and, with
// layernorm_param_partials, for LayerNorm's dw and db.
#include "common.cuh"

/// partials[k, c] = Σ m[r, c] over the rows of chunk k (grid y), in order.
extern "C" __global__ void column_sum_partials(const float* __restrict__ m, float* __restrict__ partials,
                                               int rows, int C, int rows_per_chunk) {
    int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (c >= C) return;
    int chunk = (int)blockIdx.y;
    int end = min(rows, (chunk + 1) * rows_per_chunk);
    float sum = 0.0f;
    for (int r = chunk * rows_per_chunk; r < end; r++) sum += m[(long long)r * C + c];
    partials[(long long)chunk * C + c] = sum;
}

/// acc[c] += Σ_k partials[k, c], chunks in order.
extern "C" __global__ void add_column_partials(const float* __restrict__ partials, int chunks, int C,
                                               float* __restrict__ acc) {
    int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (c >= C) return;
    float sum = 0.0f;
    for (int k = 0; k < chunks; k++) sum += partials[(long long)k * C + c];
    acc[c] += sum;
}
