// Token + position embedding (cptrain::model::Gpt forward/backward).
//
// Backward without float atomics: the host sorts the rows by the table row
// they read (token id, or position) into buckets, stably, and one thread per
// (bucket, channel) adds the bucket's rows in row order. That is the CPU's
// order too, so the result is bit-identical to it and to itself.
#include "common.cuh"

/// out[i, :] = wte[tokens[i], :] + wpe[positions[i % len], :]; a token
/// CPT_NO_TOKEN_ROW adds nothing, and neither does wpe when has_wpe is 0 (the
/// vocabulary-parallel embedding of tensor parallelism).
extern "C" __global__ void embedding_forward(const unsigned* __restrict__ tokens,
                                             const unsigned* __restrict__ positions,
                                             const float* __restrict__ wte, const float* __restrict__ wpe,
                                             float* __restrict__ out, int rows, int len, int C, int has_wpe) {
    long long n = (long long)rows * C;
    for (long long i = grid_index(); i < n; i += grid_stride()) {
        long long row = i / C;
        int c = (int)(i % C);
        unsigned t = tokens[row];
        float te = t == CPT_NO_TOKEN_ROW ? 0.0f : wte[(long long)t * C + c];
        out[i] = has_wpe ? te + wpe[(long long)positions[row % len] * C + c] : te;
    }
}

/// For bucket k (grid x) and channel c (grid y · block x):
/// table[keys[k], c] += Σ grad[rows[j], c] for j in starts[k] .. starts[k + 1].
extern "C" __global__ void embedding_backward(const float* __restrict__ grad, const int* __restrict__ keys,
                                              const int* __restrict__ starts, const int* __restrict__ rows,
                                              int C, float* __restrict__ table) {
    int k = (int)blockIdx.x;
    int c = (int)(blockIdx.y * blockDim.x + threadIdx.x);
    if (c >= C) return;
    float* out = table + (long long)keys[k] * C + c;
    float acc = *out;
    for (int j = starts[k]; j < starts[k + 1]; j++) acc += grad[(long long)rows[j] * C + c];
    *out = acc;
}
