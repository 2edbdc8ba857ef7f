// Attention on the tensor cores: fy_cpu_attention's semantics with q, k, v
// and the softmax weights rounded to bf16 and every product accumulated in
// f32 (mma.sync m16n8k16, sm_80 and later), a flash-style online softmax, no
// Lq x Lk buffer. For bf16 arithmetic without a bias (the DiT's self- and
// cross-attention), head dims 64 and 128; fy_cuda_attention runs the f32
// kernels for everything else.
//
// Layout as cuda_ops_attention.cu: q, out [B, Lq, H, D]; k, v [B, Lk, H, D];
// key_mask [B, Lk] int64 or NULL.
//
// One block of TC_WARPS warps per (batch, head, TC_BQ query rows); each warp
// owns 16 rows. The query rows' A fragments stay in registers. For each tile
// of TC_BK keys the block stages K [key][d] and V transposed [d][key] in
// shared memory as bf16 (converted from the f32 activations as they are
// loaded), so every fragment is one 32-bit shared load:
//   S = Q K^T    A = Q (row-major), B = K rows;
//   softmax      scores scaled into log2 units (exp2), running max per row
//                shared by the 4 lanes that hold the row; the row sums stay
//                per lane and are reduced once at the end;
//   O += P V     the S accumulators, as bf16 pairs, are P's A fragments
//                (the m16n8 C layout of two adjacent key tiles is the m16k16
//                A layout); B = V^T rows.
// Shared rows are padded by 8 bf16 so the 8 row groups of a fragment load
// fall in distinct banks.
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cuda_ops_internal.h"

namespace {

constexpr int TC_WARPS = 4;
constexpr int TC_THREADS = TC_WARPS * 32;
constexpr int TC_BQ = 16 * TC_WARPS;  // query rows per block
constexpr int TC_BK = 64;             // keys per tile
constexpr int TC_PAD = 8;             // bf16 of padding per shared row

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    // .x (the lower 16 bits) holds the element with the smaller index.
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

// c += a b: a 16x16 (row), b 16x8 (col), bf16 in, f32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    // Never launched below sm_80 (fy_cuda_attention_tc checks the device);
    // compiled there only because a build may target older chips too.
    __trap();
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ float max_of_row(float x)
{
    // The 4 lanes of a row group are lanes 4g .. 4g+3.
    float y = __shfl_xor_sync(0xffffffffu, x, 1);
    x = y > x ? y : x;
    y = __shfl_xor_sync(0xffffffffu, x, 2);
    return y > x ? y : x;
}

__device__ __forceinline__ float sum_of_row(float x)
{
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

template <int D>
__global__ void __launch_bounds__(TC_THREADS)
attention_tc_kernel(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,
                    float *__restrict__ out, int64_t H, int64_t Lq, int64_t Lk, int64_t q_tiles, float scale_log2,
                    const int64_t *__restrict__ key_mask)
{
    static_assert(D % 16 == 0 && D <= 128, "D: a multiple of 16 up to 128");
    constexpr int KS = D + TC_PAD;      // K row stride (bf16)
    constexpr int VS = TC_BK + TC_PAD;  // V^T row stride (bf16)
    constexpr int DK = D / 16;          // k-steps of S over d
    constexpr int DN = D / 8;           // n-tiles of O over d
    constexpr int NK = TC_BK / 8;       // n-tiles of S over the tile's keys
    __shared__ __align__(16) __nv_bfloat16 ks[TC_BK * KS];
    __shared__ __align__(16) __nv_bfloat16 vt[D * VS];

    const int tid = (int)threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int g = lane >> 2;  // row group: rows g and g + 8 of the warp's 16
    const int t4 = lane & 3;  // lane in the group: columns 2 t4, 2 t4 + 1
    const int64_t tile = (int64_t)blockIdx.x;
    const int64_t bh = tile / q_tiles;
    const int64_t b = bh / H;
    const int64_t h = bh % H;
    const int64_t row_lo = (tile % q_tiles) * TC_BQ + warp * 16 + g;
    const int64_t row_hi = row_lo + 8;
    const int64_t ld = H * D;

    // A batch item whose keys are all masked attends uniformly (scores 0).
    const int64_t *mask_b = key_mask ? key_mask + b * Lk : nullptr;
    int any_key = 0;
    if (mask_b)
        for (int64_t j = tid; j < Lk && !any_key; j += TC_THREADS) any_key = mask_b[j] != 0;
    const int any_valid = __syncthreads_or(any_key);
    const bool uniform = mask_b != nullptr && !any_valid;
    const bool use_mask = mask_b != nullptr && !uniform;

    // The warp's query rows as A fragments (rows past Lq are zeros).
    uint32_t qa[DK][4];
    {
        const float *q_lo = q + (b * Lq + row_lo) * ld + h * D;
        const float *q_hi = q + (b * Lq + row_hi) * ld + h * D;
        const bool lo_ok = row_lo < Lq, hi_ok = row_hi < Lq;
#pragma unroll
        for (int s = 0; s < DK; s++) {
            const int d0 = 16 * s + 2 * t4;
            qa[s][0] = lo_ok ? pack_bf16(q_lo[d0], q_lo[d0 + 1]) : 0u;
            qa[s][1] = hi_ok ? pack_bf16(q_hi[d0], q_hi[d0 + 1]) : 0u;
            qa[s][2] = lo_ok ? pack_bf16(q_lo[d0 + 8], q_lo[d0 + 9]) : 0u;
            qa[s][3] = hi_ok ? pack_bf16(q_hi[d0 + 8], q_hi[d0 + 9]) : 0u;
        }
    }

    float o[DN][4];
#pragma unroll
    for (int n = 0; n < DN; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY};  // running max of rows lo, hi (log2 units)
    float l[2] = {0.0f, 0.0f};            // this lane's share of the row sums

    const float *k_bh = k + b * Lk * ld + h * D;
    const float *v_bh = v + b * Lk * ld + h * D;
    const float4 zero4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);

    for (int64_t j0 = 0; j0 < Lk; j0 += TC_BK) {
        __syncthreads();  // the previous tile is consumed
        // K rows as they are; keys past Lk are zeros.
        for (int idx = tid; idx < TC_BK * (D / 4); idx += TC_THREADS) {
            const int j = idx / (D / 4), d4 = idx % (D / 4);
            const float4 kk = j0 + j < Lk ? *reinterpret_cast<const float4 *>(k_bh + (j0 + j) * ld + 4 * d4) : zero4;
            uint2 packed = make_uint2(pack_bf16(kk.x, kk.y), pack_bf16(kk.z, kk.w));
            *reinterpret_cast<uint2 *>(ks + j * KS + 4 * d4) = packed;
        }
        // V transposed, two keys per thread so each store is a bf16 pair
        // (consecutive lanes: consecutive key pairs, distinct banks).
        for (int idx = tid; idx < (TC_BK / 2) * (D / 4); idx += TC_THREADS) {
            const int jj = idx % (TC_BK / 2), d4 = idx / (TC_BK / 2);
            const int64_t j = j0 + 2 * jj;
            const float4 va = j < Lk ? *reinterpret_cast<const float4 *>(v_bh + j * ld + 4 * d4) : zero4;
            const float4 vb = j + 1 < Lk ? *reinterpret_cast<const float4 *>(v_bh + (j + 1) * ld + 4 * d4) : zero4;
            uint32_t *col = reinterpret_cast<uint32_t *>(vt + (4 * d4) * VS + 2 * jj);
            col[0 * VS / 2] = pack_bf16(va.x, vb.x);
            col[1 * VS / 2] = pack_bf16(va.y, vb.y);
            col[2 * VS / 2] = pack_bf16(va.z, vb.z);
            col[3 * VS / 2] = pack_bf16(va.w, vb.w);
        }
        __syncthreads();

        // S = Q K^T for the warp's 16 rows and the tile's keys.
        float sc[NK][4];
#pragma unroll
        for (int n = 0; n < NK; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
        for (int s = 0; s < DK; s++) {
#pragma unroll
            for (int n = 0; n < NK; n++) {
                const __nv_bfloat16 *kr = ks + (8 * n + g) * KS + 16 * s + 2 * t4;
                mma_bf16(sc[n], qa[s], *reinterpret_cast<const uint32_t *>(kr),
                         *reinterpret_cast<const uint32_t *>(kr + 8));
            }
        }

        // Scale, mask, and the tile's max per row (element e: row lo for
        // e < 2, hi else; key 8 n + 2 t4 + (e & 1)).
        float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < NK; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int64_t key = j0 + 8 * n + 2 * t4 + (e & 1);
                const bool ok = key < Lk && (!use_mask || mask_b[key] != 0);
                const float x = ok ? (uniform ? 0.0f : sc[n][e] * scale_log2) : -INFINITY;
                sc[n][e] = x;
                mt[e >> 1] = x > mt[e >> 1] ? x : mt[e >> 1];
            }
        }
        float alpha[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const float tmax = max_of_row(mt[r]);
            const float m_new = tmax > m[r] ? tmax : m[r];
            // Every key so far masked: nothing to add (p = 0, state kept).
            const bool none = m_new == -INFINITY;
            alpha[r] = none ? 1.0f : exp2f(m[r] - m_new);
            m[r] = m_new;
            l[r] *= alpha[r];
        }
#pragma unroll
        for (int n = 0; n < NK; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float mr = m[e >> 1];
                const float p = mr == -INFINITY ? 0.0f : exp2f(sc[n][e] - mr);
                sc[n][e] = p;
                l[e >> 1] += p;
            }
        }
#pragma unroll
        for (int n = 0; n < DN; n++) {
            o[n][0] *= alpha[0];
            o[n][1] *= alpha[0];
            o[n][2] *= alpha[1];
            o[n][3] *= alpha[1];
        }

        // O += P V, 16 keys per k-step.
#pragma unroll
        for (int kk = 0; kk < TC_BK / 16; kk++) {
            const uint32_t pa[4] = {pack_bf16(sc[2 * kk][0], sc[2 * kk][1]), pack_bf16(sc[2 * kk][2], sc[2 * kk][3]),
                                    pack_bf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                                    pack_bf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
            for (int n = 0; n < DN; n++) {
                const __nv_bfloat16 *vr = vt + (8 * n + g) * VS + 16 * kk + 2 * t4;
                mma_bf16(o[n], pa, *reinterpret_cast<const uint32_t *>(vr),
                         *reinterpret_cast<const uint32_t *>(vr + 8));
            }
        }
    }

    const float inv_lo = 1.0f / sum_of_row(l[0]);
    const float inv_hi = 1.0f / sum_of_row(l[1]);
    float *o_lo = out + (b * Lq + row_lo) * ld + h * D + 2 * t4;
    float *o_hi = out + (b * Lq + row_hi) * ld + h * D + 2 * t4;
#pragma unroll
    for (int n = 0; n < DN; n++) {
        if (row_lo < Lq) *reinterpret_cast<float2 *>(o_lo + 8 * n) = make_float2(o[n][0] * inv_lo, o[n][1] * inv_lo);
        if (row_hi < Lq) *reinterpret_cast<float2 *>(o_hi + 8 * n) = make_float2(o[n][2] * inv_hi, o[n][3] * inv_hi);
    }
}

template <int D>
fy_status launch_tc(fy_cuda_ops *ops, const float *q, const float *k, const float *v, float *out, int64_t B,
                    int64_t H, int64_t Lq, int64_t Lk, float scale, const int64_t *key_mask)
{
    const int64_t q_tiles = (Lq + TC_BQ - 1) / TC_BQ;
    const int64_t blocks = B * H * q_tiles;
    if (blocks > INT32_MAX)
        return fy_error(FY_ERR_UNSUPPORTED, "cuda attention: %lld blocks exceed the grid", (long long)blocks);
    const float log2e = 1.4426950408889634f;
    attention_tc_kernel<D><<<(unsigned)blocks, TC_THREADS, 0, ops->stream>>>(q, k, v, out, H, Lq, Lk, q_tiles,
                                                                             scale * log2e, key_mask);
    return fy_cuda_launched("attention (tensor cores)");
}

bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

}  // namespace

extern "C" fy_status fy_cuda_attention_tc(fy_cuda_ops *ops, const float *q, const float *k, const float *v,
                                          float *out, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                                          float scale, const float *bias, const int64_t *key_mask, bool *ran)
{
    *ran = false;
    if (!ops->tc_attention || ops->math != FY_CUDA_MATH_BF16 || bias != nullptr || ops->cc_major < 8)
        return FY_OK;
    // float4 loads of k and v, float2 stores of out.
    if (!aligned16(k) || !aligned16(v) || !aligned16(out) || !aligned16(q)) return FY_OK;
    fy_status st = FY_OK;
    switch (D) {
    case 64: st = launch_tc<64>(ops, q, k, v, out, B, H, Lq, Lk, scale, key_mask); break;
    case 128: st = launch_tc<128>(ops, q, k, v, out, B, H, Lq, Lk, scale, key_mask); break;
    default: return FY_OK;
    }
    *ran = st == FY_OK;
    return st;
}
