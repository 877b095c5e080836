// bf16 storage of f32 values (cptrain's Kernels::round_to_bf16 and
// widen_bf16): two values to a 32-bit word, value 2i in the low half of
// word i, the high half zero past an odd count.
#include "common.cuh"

/// The bf16 bits x rounds to, as the CPU's bf16 products round (so every
/// device keeps the same bits): nearest, ties to even; a subnormal input
/// becomes a zero of its sign; a NaN stays a NaN, made quiet.
__device__ __forceinline__ unsigned int bf16_bits(float x) {
    unsigned int bits = __float_as_uint(x);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (bits >> 16) | 0x40u;
    if ((bits & 0x7f800000u) == 0u) return (bits >> 16) & 0x8000u;
    return (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
}

/// words[i] = bf16(x[2i]) | bf16(x[2i + 1]) << 16, for n values of x.
extern "C" __global__ void round_to_bf16(const float* __restrict__ x, unsigned int* __restrict__ words,
                                         long long n) {
    long long count = (n + 1) / 2;
    for (long long i = grid_index(); i < count; i += grid_stride()) {
        unsigned int high = 2 * i + 1 < n ? bf16_bits(x[2 * i + 1]) : 0u;
        words[i] = bf16_bits(x[2 * i]) | (high << 16);
    }
}

/// x[i] = value i of words, exactly, for n values.
extern "C" __global__ void widen_bf16(const unsigned int* __restrict__ words, float* __restrict__ x, long long n) {
    for (long long i = grid_index(); i < n; i += grid_stride()) {
        unsigned int word = words[i / 2];
        x[i] = __uint_as_float((i & 1) ? (word & 0xffff0000u) : (word << 16));
    }
}
