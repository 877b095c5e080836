// Token-major [B, T, width] ↔ head-major [B, H, T, D] (cptrain::kernels::HeadLayout):
// the head-major tensor is the H·D columns of each row starting at col0.
// One thread per head-major element; reads or writes of a D-wide run are
// contiguous on both sides.
#include "common.cuh"

/// The token-major offset of head-major element i.
__device__ __forceinline__ long long token_major_offset(long long i, int T, int H, int D, int width, int col0) {
    int d = (int)(i % D);
    long long bht = i / D;
    int t = (int)(bht % T);
    long long bh = bht / T;
    int h = (int)(bh % H);
    long long b = bh / H;
    return (b * T + t) * width + col0 + (long long)h * D + d;
}

/// dst[b, h, t, :] = src[b, t, col0 + h·D ..].
extern "C" __global__ void split_heads(const float* __restrict__ src, float* __restrict__ dst, int B, int T, int H,
                                       int D, int width, int col0) {
    long long n = (long long)B * H * T * D;
    for (long long i = grid_index(); i < n; i += grid_stride())
        dst[i] = src[token_major_offset(i, T, H, D, width, col0)];
}

/// dst[b, t, col0 + h·D ..] = src[b, h, t, :] (other columns untouched).
extern "C" __global__ void merge_heads(const float* __restrict__ src, float* __restrict__ dst, int B, int T, int H,
                                       int D, int width, int col0) {
    long long n = (long long)B * H * T * D;
    for (long long i = grid_index(); i < n; i += grid_stride())
        dst[token_major_offset(i, T, H, D, width, col0)] = src[i];
}
