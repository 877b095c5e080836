// LayerNorm over rows of width C (cptrain::kernels::layernorm_*), one warp
// per row: block (32, rows per block), grid over row groups. The weight and
// bias gradients go through per-chunk partials (column_reduce.cu), never
// through atomics, so they are deterministic.
#include "common.cuh"

/// GPT-2's LayerNorm epsilon (`cptrain::kernels::LAYERNORM_EPS`).
#define CPT_LAYERNORM_EPS 1e-5f

/// out = (x − mean)·rstd·w + b per row; saves mean and rstd (biased variance).
extern "C" __global__ void layernorm_forward(const float* __restrict__ x, const float* __restrict__ w,
                                             const float* __restrict__ b, float* __restrict__ out,
                                             float* __restrict__ mean, float* __restrict__ rstd,
                                             int rows, int C) {
    int row = (int)(blockIdx.x * blockDim.y + threadIdx.y);
    if (row >= rows) return;
    const float* xr = x + (long long)row * C;
    float sum = 0.0f;
    for (int c = threadIdx.x; c < C; c += 32) sum += xr[c];
    float m = warp_sum(sum) / (float)C;
    float sq = 0.0f;
    for (int c = threadIdx.x; c < C; c += 32) sq += (xr[c] - m) * (xr[c] - m);
    float s = 1.0f / sqrtf(warp_sum(sq) / (float)C + CPT_LAYERNORM_EPS);
    float* yr = out + (long long)row * C;
    for (int c = threadIdx.x; c < C; c += 32) yr[c] = (xr[c] - m) * s * w[c] + b[c];
    if (threadIdx.x == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}

/// dx += rstd·(g − mean(g) − xhat·mean(g·xhat)) with g = dout·w, per row.
extern "C" __global__ void layernorm_backward_dx(const float* __restrict__ dout, const float* __restrict__ x,
                                                 const float* __restrict__ w, const float* __restrict__ mean,
                                                 const float* __restrict__ rstd, float* __restrict__ dx,
                                                 int rows, int C) {
    int row = (int)(blockIdx.x * blockDim.y + threadIdx.y);
    if (row >= rows) return;
    long long base = (long long)row * C;
    float m = mean[row], s = rstd[row];
    float g_sum = 0.0f, gx_sum = 0.0f;
    for (int c = threadIdx.x; c < C; c += 32) {
        float g = dout[base + c] * w[c];
        g_sum += g;
        gx_sum += g * (x[base + c] - m) * s;
    }
    float g_mean = warp_sum(g_sum) / (float)C;
    float gx_mean = warp_sum(gx_sum) / (float)C;
    for (int c = threadIdx.x; c < C; c += 32) {
        float xhat = (x[base + c] - m) * s;
        dx[base + c] += s * (dout[base + c] * w[c] - g_mean - xhat * gx_mean);
    }
}

/// Stage 1 of dw, db: for column c (grid x) and row chunk k (grid y),
/// partials[k, c] = Σ dout·xhat and partials[chunks + k, c] = Σ dout over the
/// chunk's rows, in row order. Stage 2 is `add_column_partials`.
extern "C" __global__ void layernorm_param_partials(const float* __restrict__ dout, const float* __restrict__ x,
                                                    const float* __restrict__ mean,
                                                    const float* __restrict__ rstd, float* __restrict__ partials,
                                                    int rows, int C, int rows_per_chunk) {
    int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (c >= C) return;
    int chunk = (int)blockIdx.y, chunks = (int)gridDim.y;
    int end = min(rows, (chunk + 1) * rows_per_chunk);
    float dw = 0.0f, db = 0.0f;
    for (int r = chunk * rows_per_chunk; r < end; r++) {
        float dy = dout[(long long)r * C + c];
        dw += dy * ((x[(long long)r * C + c] - mean[r]) * rstd[r]);
        db += dy;
    }
    partials[(long long)chunk * C + c] = dw;
    partials[(long long)(chunks + chunk) * C + c] = db;
}
