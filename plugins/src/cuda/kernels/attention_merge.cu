// Exact merge of attention results over disjoint key sets
// (cptrain::kernels::merge_partial): lse = log(e^lse_a + e^lse_b),
// o = e^(lse_a − lse)·o_a + e^(lse_b − lse)·o_b; a side with lse = −inf
// contributes nothing. One thread per row.
#include "common.cuh"

extern "C" __global__ void attention_merge(float* __restrict__ o_acc, float* __restrict__ lse_acc,
                                           const float* __restrict__ o_part, const float* __restrict__ lse_part,
                                           int rows, int D) {
    int row = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (row >= rows) return;
    float a = lse_acc[row], b = lse_part[row];
    float* o = o_acc + (long long)row * D;
    const float* p = o_part + (long long)row * D;
    if (b == -CPT_INF) return;
    if (a == -CPT_INF) {
        for (int d = 0; d < D; d++) o[d] = p[d];
        lse_acc[row] = b;
        return;
    }
    float hi = fmaxf(a, b), lo = fminf(a, b);
    float merged = hi + log1pf(expf(lo - hi));
    float wa = expf(a - merged), wb = expf(b - merged);
    for (int d = 0; d < D; d++) o[d] = wa * o[d] + wb * p[d];
    lse_acc[row] = merged;
}
