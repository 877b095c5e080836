// GELU, tanh approximation (cptrain::kernels::bias_gelu_forward,
// gelu_backward_from_slope): gelu(x) = x·σ(2u), u = √(2/π)(x + 0.044715x³).
#include "common.cuh"

/// pre += bias (per `width`-wide row); out = gelu(pre); pre ← gelu′(pre).
extern "C" __global__ void bias_gelu_forward(const float* __restrict__ bias, float* __restrict__ pre,
                                             float* __restrict__ out, long long n, int width) {
    const float sqrt_2_over_pi = 0.7978846f, cubic = 0.044715f;
    for (long long i = grid_index(); i < n; i += grid_stride()) {
        float x = pre[i] + bias[i % width];
        float x2 = x * x;
        float u = sqrt_2_over_pi * (cubic * x2 * x + x);
        float s = 1.0f / (1.0f + expf(-2.0f * u));
        float du = sqrt_2_over_pi * (3.0f * cubic * x2 + 1.0f);
        out[i] = x * s;
        pre[i] = 2.0f * x * s * ((1.0f - s) * du) + s;
    }
}

/// grad *= slope (the slope bias_gelu_forward left).
extern "C" __global__ void gelu_backward_from_slope(const float* __restrict__ slope, float* __restrict__ grad,
                                                    long long n) {
    for (long long i = grid_index(); i < n; i += grid_stride()) grad[i] *= slope[i];
}
