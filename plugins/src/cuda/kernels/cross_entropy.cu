// Fused softmax + cross-entropy over the vocabulary
// (cptrain::kernels::cross_entropy_*), one block per row. The forward keeps
// the logits and writes each row's log-sum-exp and loss; the backward turns
// the logits into their gradient in place; loss_sum adds the losses in one
// block, in a fixed order.
#include "common.cuh"

/// lse[r] = log Σ_j e^logits[r, j]; losses[r] = lse[r] − logits[r, t], 0 for
/// an ignored row and NaN for a target outside the vocabulary.
extern "C" __global__ void cross_entropy_forward(const float* __restrict__ logits,
                                                 const unsigned* __restrict__ targets, float* __restrict__ lse,
                                                 float* __restrict__ losses, int rows, int V) {
    __shared__ float scratch[32];
    int row = (int)blockIdx.x;
    if (row >= rows) return;
    const float* x = logits + (long long)row * V;
    float m = -CPT_INF;
    for (int j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, x[j]);
    m = block_max(m, scratch);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(x[j] - m);
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) {
        float l = m + logf(sum);
        unsigned t = targets[row];
        lse[row] = l;
        losses[row] = t == CPT_IGNORE_TARGET ? 0.0f : t < (unsigned)V ? l - x[t] : CPT_INF - CPT_INF;
    }
}

/// logits ← scale·(softmax − onehot(target)), zero on ignored rows.
extern "C" __global__ void cross_entropy_backward(float* __restrict__ logits, const unsigned* __restrict__ targets,
                                                  const float* __restrict__ lse, float scale, int rows, int V) {
    int row = (int)blockIdx.x;
    if (row >= rows) return;
    float* x = logits + (long long)row * V;
    unsigned t = targets[row];
    float l = lse[row];
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        if (t == CPT_IGNORE_TARGET)
            x[j] = 0.0f;
        else
            x[j] = scale * expf(x[j] - l) - ((unsigned)j == t ? scale : 0.0f);
    }
}

/// result[0] = Σ losses over counted rows (in f64), result[1] = their count.
/// One block; each thread sums a fixed stride of rows, then one block sum.
extern "C" __global__ void loss_sum(const float* __restrict__ losses, const unsigned* __restrict__ targets,
                                    int rows, double* __restrict__ result) {
    __shared__ double scratch[32];
    double sum = 0.0, count = 0.0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        if (targets[r] != CPT_IGNORE_TARGET) {
            sum += (double)losses[r];
            count += 1.0;
        }
    }
    sum = block_sum(sum, scratch);
    count = block_sum(count, scratch);
    if (threadIdx.x == 0) {
        result[0] = sum;
        result[1] = count;
    }
}
