// Flash-style attention over head-major q, k, v [slabs, rows, D]
// (cptrain::kernels::BatchedAttention with attention_block_*): each thread
// owns one query row (forward, dq) or one key row (dk, dv) and walks tiles
// of the other side staged in shared memory, with an online softmax, so no
// score matrix is formed. Forward writes the output normalised within this
// key set and the row log-sum-exp of the scaled scores (−inf, output 0, for
// a row that sees no key); backward takes the FINAL output and lse (after
// any merge) and ACCUMULATES this key set's share of dq, dk, dv. No atomics:
// dq comes from the row-owning pass, dk and dv from the key-owning pass.
#include "common.cuh"

/// Keys (forward, dq) or query rows (dk, dv) per shared-memory tile
/// (`ATTENTION_TILE` in launch.rs).
#define CPT_ATTN_TILE 32
/// Widest head (`ATTENTION_MAX_HEAD_DIM` in launch.rs).
#define CPT_ATTN_MAX_D 128

/// Which keys each query row sees (cptrain::kernels::Mask).
enum AttentionMask { MASK_NONE = 0, MASK_CAUSAL = 1, MASK_CAUSAL_BOTTOM_RIGHT = 2 };

/// One batched call (mirrors `AttentionShape` in launch.rs): `q_count` rows
/// from `q_start` of each slab's `q_per_slab`, keys likewise.
struct AttentionShape {
    int slabs, head_dim;
    int q_per_slab, q_start, q_count;
    int kv_per_slab, kv_start, kv_count;
    int mask;
    float scale;
};

/// Leading keys (of kv_count) that selected query row `row` sees.
__device__ __forceinline__ int visible_keys(const AttentionShape& s, int row) {
    int m = s.q_count, n = s.kv_count;
    if (s.mask == MASK_CAUSAL) return min(row + 1, n);
    if (s.mask == MASK_CAUSAL_BOTTOM_RIGHT) return max(0, min(row + 1 + n - m, n));
    return n;
}

/// First selected query row that sees key `key`.
__device__ __forceinline__ int first_viewer(const AttentionShape& s, int key) {
    if (s.mask == MASK_CAUSAL) return key;
    if (s.mask == MASK_CAUSAL_BOTTOM_RIGHT) return max(0, key + s.q_count - s.kv_count);
    return 0;
}

__device__ __forceinline__ long long q_offset(const AttentionShape& s, int slab, int row) {
    return ((long long)slab * s.q_per_slab + s.q_start + row) * s.head_dim;
}
__device__ __forceinline__ long long kv_offset(const AttentionShape& s, int slab, int key) {
    return ((long long)slab * s.kv_per_slab + s.kv_start + key) * s.head_dim;
}
__device__ __forceinline__ long long lse_index(const AttentionShape& s, int slab, int row) {
    return (long long)slab * s.q_per_slab + s.q_start + row;
}

/// Stages rows first .. first + count of a, b (from the given offsets,
/// D-wide) into ta, tb; the whole block takes part.
__device__ __forceinline__ void stage_tiles(const float* a, const float* b, long long offset, int count, int D,
                                            float* ta, float* tb) {
    __syncthreads();
    for (int e = threadIdx.x; e < count * D; e += blockDim.x) {
        ta[e] = a[offset + e];
        tb[e] = b[offset + e];
    }
    __syncthreads();
}

__device__ __forceinline__ float dot(const float* a, const float* b, int D) {
    float s = 0.0f;
    for (int d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

/// Grid (row tiles of blockDim.x rows, slabs); shared memory 2·TILE·D floats.
extern "C" __global__ void attention_forward(const float* __restrict__ q, const float* __restrict__ k,
                                             const float* __restrict__ v, float* __restrict__ out,
                                             float* __restrict__ lse, AttentionShape s) {
    CPT_DYNAMIC_SHARED(float, kt);
    const int D = s.head_dim, slab = (int)blockIdx.y;
    float* vt = kt + CPT_ATTN_TILE * D;
    int first = (int)(blockIdx.x * blockDim.x), row = first + (int)threadIdx.x;
    bool valid = row < s.q_count;
    int block_keys = visible_keys(s, min(first + (int)blockDim.x, s.q_count) - 1);
    int visible = valid ? visible_keys(s, row) : 0;
    float qr[CPT_ATTN_MAX_D], acc[CPT_ATTN_MAX_D], sc[CPT_ATTN_TILE];
    for (int d = 0; d < D; d++) {
        qr[d] = valid ? q[q_offset(s, slab, row) + d] : 0.0f;
        acc[d] = 0.0f;
    }
    float m = -CPT_INF, l = 0.0f;
    for (int j0 = 0; j0 < block_keys; j0 += CPT_ATTN_TILE) {
        int bc = min(CPT_ATTN_TILE, block_keys - j0);
        stage_tiles(k, v, kv_offset(s, slab, j0), bc, D, kt, vt);
        int seen = min(bc, visible - j0);
        if (seen <= 0) continue;
        float tile_max = -CPT_INF;
        for (int j = 0; j < seen; j++) {
            sc[j] = s.scale * dot(qr, kt + j * D, D);
            tile_max = fmaxf(tile_max, sc[j]);
        }
        float new_m = fmaxf(m, tile_max), correction = expf(m - new_m);
        l *= correction;
        for (int d = 0; d < D; d++) acc[d] *= correction;
        for (int j = 0; j < seen; j++) {
            float p = expf(sc[j] - new_m);
            l += p;
            for (int d = 0; d < D; d++) acc[d] += p * vt[j * D + d];
        }
        m = new_m;
    }
    if (!valid) return;
    float* o = out + q_offset(s, slab, row);
    for (int d = 0; d < D; d++) o[d] = visible > 0 ? acc[d] / l : 0.0f;
    lse[lse_index(s, slab, row)] = visible > 0 ? m + logf(l) : -CPT_INF;
}

/// dq += scale·Σ_j p_ij·(dout_i·v_j − δ_i)·k_j, with δ_i = dout_i·out_i,
/// which it also writes to `delta` (laid out as lse) for attention_backward_dkdv.
/// Grid and shared memory as attention_forward.
extern "C" __global__ void attention_backward_dq(const float* __restrict__ q, const float* __restrict__ k,
                                                 const float* __restrict__ v, const float* __restrict__ out,
                                                 const float* __restrict__ lse, const float* __restrict__ dout,
                                                 float* __restrict__ dq, float* __restrict__ delta,
                                                 AttentionShape s) {
    CPT_DYNAMIC_SHARED(float, kt);
    const int D = s.head_dim, slab = (int)blockIdx.y;
    float* vt = kt + CPT_ATTN_TILE * D;
    int first = (int)(blockIdx.x * blockDim.x), row = first + (int)threadIdx.x;
    bool valid = row < s.q_count;
    int block_keys = visible_keys(s, min(first + (int)blockDim.x, s.q_count) - 1);
    float row_lse = valid ? lse[lse_index(s, slab, row)] : -CPT_INF;
    int visible = valid && row_lse != -CPT_INF ? visible_keys(s, row) : 0;
    float qr[CPT_ATTN_MAX_D], dor[CPT_ATTN_MAX_D], acc[CPT_ATTN_MAX_D];
    float row_delta = 0.0f;
    for (int d = 0; d < D; d++) {
        qr[d] = valid ? q[q_offset(s, slab, row) + d] : 0.0f;
        dor[d] = valid ? dout[q_offset(s, slab, row) + d] : 0.0f;
        row_delta += valid ? dor[d] * out[q_offset(s, slab, row) + d] : 0.0f;
        acc[d] = 0.0f;
    }
    if (valid) delta[lse_index(s, slab, row)] = row_delta;
    for (int j0 = 0; j0 < block_keys; j0 += CPT_ATTN_TILE) {
        int bc = min(CPT_ATTN_TILE, block_keys - j0);
        stage_tiles(k, v, kv_offset(s, slab, j0), bc, D, kt, vt);
        int seen = min(bc, visible - j0);
        for (int j = 0; j < seen; j++) {
            float p = expf(s.scale * dot(qr, kt + j * D, D) - row_lse);
            float ds = p * (dot(dor, vt + j * D, D) - row_delta);
            for (int d = 0; d < D; d++) acc[d] += ds * kt[j * D + d];
        }
    }
    if (!valid) return;
    float* g = dq + q_offset(s, slab, row);
    for (int d = 0; d < D; d++) g[d] += s.scale * acc[d];
}

/// dv += Σ_i p_ij·dout_i and dk += scale·Σ_i p_ij·(dout_i·v_j − δ_i)·q_i over
/// the query rows that see key j; needs `delta` from attention_backward_dq.
/// Grid (key tiles of blockDim.x keys, slabs); shared memory
/// 2·TILE·D + 2·TILE floats.
extern "C" __global__ void attention_backward_dkdv(const float* __restrict__ q, const float* __restrict__ k,
                                                   const float* __restrict__ v, const float* __restrict__ lse,
                                                   const float* __restrict__ delta, const float* __restrict__ dout,
                                                   float* __restrict__ dk, float* __restrict__ dv,
                                                   AttentionShape s) {
    CPT_DYNAMIC_SHARED(float, qt);
    const int D = s.head_dim, slab = (int)blockIdx.y;
    float* dot_tile = qt + CPT_ATTN_TILE * D;
    float* lse_tile = dot_tile + CPT_ATTN_TILE * D;
    float* delta_tile = lse_tile + CPT_ATTN_TILE;
    int first = (int)(blockIdx.x * blockDim.x), key = first + (int)threadIdx.x;
    bool valid = key < s.kv_count;
    float kr[CPT_ATTN_MAX_D], vr[CPT_ATTN_MAX_D], dka[CPT_ATTN_MAX_D], dva[CPT_ATTN_MAX_D];
    for (int d = 0; d < D; d++) {
        kr[d] = valid ? k[kv_offset(s, slab, key) + d] : 0.0f;
        vr[d] = valid ? v[kv_offset(s, slab, key) + d] : 0.0f;
        dka[d] = 0.0f;
        dva[d] = 0.0f;
    }
    for (int i0 = first_viewer(s, first); i0 < s.q_count; i0 += CPT_ATTN_TILE) {
        int br = min(CPT_ATTN_TILE, s.q_count - i0);
        stage_tiles(q, dout, q_offset(s, slab, i0), br, D, qt, dot_tile);
        for (int i = threadIdx.x; i < br; i += blockDim.x) {
            lse_tile[i] = lse[lse_index(s, slab, i0 + i)];
            delta_tile[i] = delta[lse_index(s, slab, i0 + i)];
        }
        __syncthreads();
        for (int i = 0; i < br && valid; i++) {
            if (visible_keys(s, i0 + i) <= key || lse_tile[i] == -CPT_INF) continue;
            const float* qi = qt + i * D;
            const float* doi = dot_tile + i * D;
            float p = expf(s.scale * dot(qi, kr, D) - lse_tile[i]);
            float ds = p * (dot(doi, vr, D) - delta_tile[i]);
            for (int d = 0; d < D; d++) {
                dva[d] += p * doi[d];
                dka[d] += ds * qi[d];
            }
        }
    }
    if (!valid) return;
    float* gk = dk + kv_offset(s, slab, key);
    float* gv = dv + kv_offset(s, slab, key);
    for (int d = 0; d < D; d++) {
        gk[d] += s.scale * dka[d];
        gv[d] += dva[d];
    }
}
