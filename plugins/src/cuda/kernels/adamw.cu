// Fused AdamW step with torch.optim.AdamW semantics (cptrain::optim::AdamW).
// The decay mask is a sorted list of disjoint decayed ranges, found by
// binary search: a GPT-2 has a few hundred, against millions of elements.
#include "common.cuh"

/// Per-step scalars, computed on the host in f64 then rounded (as the CPU does).
struct AdamWStep {
    float beta1, beta2, eps;
    /// lr / (1 − beta1^t).
    float step_size;
    /// sqrt(1 − beta2^t).
    float bias_correction2_sqrt;
    /// 1 − lr·weight_decay, for decayed elements.
    float decay_factor;
};

/// Whether element i lies in one of the `count` decayed ranges, given as
/// [start, end) pairs sorted by start.
__device__ __forceinline__ bool decayed(const long long* ranges, int count, long long i) {
    int lo = 0, hi = count;  // first range with start > i
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ranges[2 * mid] <= i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && i < ranges[2 * (lo - 1) + 1];
}

extern "C" __global__ void adamw_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                      float* __restrict__ v, long long n, const long long* __restrict__ ranges,
                                      int range_count, AdamWStep c) {
    for (long long i = grid_index(); i < n; i += grid_stride()) {
        float grad = g[i];
        float mi = c.beta1 * m[i] + (1.0f - c.beta1) * grad;
        float vi = c.beta2 * v[i] + (1.0f - c.beta2) * grad * grad;
        float denom = sqrtf(vi) / c.bias_correction2_sqrt + c.eps;
        float decay = decayed(ranges, range_count, i) ? c.decay_factor : 1.0f;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - c.step_size * mi / denom;
    }
}
