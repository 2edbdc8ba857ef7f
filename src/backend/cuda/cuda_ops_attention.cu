// Fused attention on the GPU: fy_cpu_attention's semantics (ferry/ops.h) with
// a flash-style online softmax in f32, and no Lq x Lk buffer.
//
// These are the f32 kernels (the same in both arithmetic modes); in bf16
// arithmetic with tc_attention on, the tensor-core kernel of
// cuda_ops_attention_tc.cu takes the calls it covers.
//
// Layout: q, out [B, Lq, H, D]; k, v [B, Lk, H, D] (heads interleaved);
// bias [H, Lq, Lk] or NULL; key_mask [B, Lk] int64 on the device or NULL.
//
// One thread block per (batch, head, tile of ATT_BQ query rows); ATT_WARPS
// warps, each owning ATT_ROWS query rows of the tile. The block walks the
// keys in tiles of 32, staged in shared memory with the query tile:
//   scores  lane j computes q_r . k_j for key j of the tile and each of its
//           warp's rows r (float4 reads: q broadcast, K rows padded by 4
//           floats so a quarter-warp's 128-bit reads hit distinct banks);
//   softmax running max m and sum l per row, kept identical in every lane
//           (xor-butterfly reductions), accumulator rescaled by
//           exp(m_old - m_new), as ops_attention.c does per key tile;
//   P V     lane owns output dims d = lane + 32 t and takes p_j from lane j
//           with __shfl_sync.
// Keys past Lk in the last tile get score -inf and zero K/V rows; query rows
// past Lq are computed on zeros and never written.
// The tile width D is a template parameter: the head dim itself when it is a
// multiple of 32 up to 256, or 384 (the Wan VAE's single head); head dims up
// to 128 that are not (the tiny models' 8 and 16) run zero-padded in the next
// width up (the padding adds nothing to q.k or p v and is never written).
// Any other head dim, or a device whose shared memory cannot hold the tile,
// runs attention_any_kernel: one warp per query row, correct for every D,
// not fast. Addresses are int64 (Lq, Lk up to hundreds of
// thousands); the grid is one-dimensional (B * H * query tiles, the query
// tile fastest so the blocks of one head run together and share K/V in L2).
// Shared memory: (32 D + 32 (D + 4) + 32 D) floats, 48.5 KiB at D = 128
// (opted in above 48 KiB), 96.5 KiB at D = 256, 148.5 KiB at D = 384.
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cuda_ops_internal.h"

namespace {

constexpr int ATT_TK = 32;     // keys per tile: one per lane
constexpr int ATT_WARPS = 8;   // warps per block
constexpr int ATT_ROWS = 4;    // query rows per warp
constexpr int ATT_BQ = ATT_WARPS * ATT_ROWS;  // query rows per block
constexpr int ATT_THREADS = ATT_WARPS * 32;
constexpr int ATT_KPAD = 4;    // floats of padding per K row in shared memory
constexpr int ATT_MAX_TILE_D = 384;

__device__ __forceinline__ float warp_max(float x)
{
    // Same comparison as the CPU's running max (a NaN never wins).
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float y = __shfl_xor_sync(0xffffffffu, x, o);
        x = y > x ? y : x;
    }
    return x;
}

__device__ __forceinline__ float warp_sum(float x)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

template <int D>
constexpr size_t attention_smem_bytes()
{
    return (size_t)(ATT_BQ * D + ATT_TK * (D + ATT_KPAD) + ATT_TK * D) * sizeof(float);
}

// Blocks per SM the register allocation must allow: 4 (64 registers) for
// D <= 128, where shared memory also fits 4 blocks; larger D is held to 2
// blocks by its shared memory anyway.
template <int D>
constexpr int attention_min_blocks()
{
    return D <= 128 ? 4 : 1;
}

// EXACT: the head dim is D; else it is d_real < D, and dims [d_real, D) are
// zeros in shared memory.
template <int D, bool EXACT>
__global__ void __launch_bounds__(ATT_THREADS, attention_min_blocks<D>())
attention_kernel(const float *__restrict__ q, const float *__restrict__ k,
                 const float *__restrict__ v, float *__restrict__ out, int64_t H, int64_t Lq,
                 int64_t Lk, int64_t q_tiles, float scale, const float *__restrict__ bias,
                 const int64_t *__restrict__ key_mask, int64_t d_real)
{
    static_assert(D % 32 == 0 && D >= 32 && D <= ATT_MAX_TILE_D, "D: a multiple of 32 up to 384");
    const int64_t HD = EXACT ? (int64_t)D : d_real;  // the head dim in global memory
    constexpr int DPL = D / 32;             // output dims per lane
    constexpr int KS = D + ATT_KPAD;        // K row stride in shared memory
    extern __shared__ float4 att_smem4[];
    float *qs = reinterpret_cast<float *>(att_smem4);  // [ATT_BQ][D]
    float *ks = qs + ATT_BQ * D;                        // [ATT_TK][KS]
    float *vs = ks + ATT_TK * KS;                       // [ATT_TK][D]

    const int tid = (int)threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int64_t tile = (int64_t)blockIdx.x;
    const int64_t bh = tile / q_tiles;
    const int64_t b = bh / H;
    const int64_t h = bh % H;
    const int64_t i0 = (tile % q_tiles) * ATT_BQ;
    const int64_t ld = H * HD;  // stride between tokens

    // Query tile (rows past Lq are zeros; computed, never written).
    for (int idx = tid; idx < ATT_BQ * D; idx += ATT_THREADS) {
        const int r = idx / D, d = idx % D;
        const int64_t i = i0 + r;
        qs[idx] = i < Lq && (EXACT || d < HD) ? q[((b * Lq + i) * H + h) * HD + d] : 0.0f;
    }

    // A batch item whose keys are all masked attends uniformly (scores 0,
    // bias ignored): every row gets the mean of v, as the CPU does.
    // (A thread stops at its first valid key.)
    const int64_t *mask_b = key_mask ? key_mask + b * Lk : nullptr;  // [Lk] of this item
    int any_key = 0;
    if (mask_b)
        for (int64_t j = tid; j < Lk && !any_key; j += ATT_THREADS) any_key = mask_b[j] != 0;
    const int any_valid = __syncthreads_or(any_key);
    const bool uniform = mask_b != nullptr && !any_valid;
    const bool use_mask = mask_b != nullptr && !uniform;
    const bool use_bias = bias != nullptr && !uniform;

    // Key j of (b, h) is at k_bh + j * ld (same for v).
    const float *k_bh = k + b * Lk * ld + h * HD;
    const float *v_bh = v + b * Lk * ld + h * HD;

    const int r0 = warp * ATT_ROWS;  // this warp's first row in the tile
    float m[ATT_ROWS], l[ATT_ROWS], acc[ATT_ROWS][DPL];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int t = 0; t < DPL; t++) acc[r][t] = 0.0f;
    }

    for (int64_t j0 = 0; j0 < Lk; j0 += ATT_TK) {
        const int nk = (int)(Lk - j0 < ATT_TK ? Lk - j0 : ATT_TK);

        // K and V tile; keys past Lk are zeros (their p is 0, and 0 * 0 adds
        // nothing).
        __syncthreads();  // the previous tile is consumed
#pragma unroll 2
        for (int idx = tid; idx < ATT_TK * D; idx += ATT_THREADS) {
            const int j = idx / D, d = idx % D;
            float kv = 0.0f, vv = 0.0f;
            if (j < nk && (EXACT || d < HD)) {
                const int64_t g = (j0 + j) * ld + d;
                kv = k_bh[g];
                vv = v_bh[g];
            }
            ks[j * KS + d] = kv;
            vs[j * D + d] = vv;
        }
        __syncthreads();

        // Scores: lane = key of the tile, for each of the warp's rows.
        float s[ATT_ROWS];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) s[r] = 0.0f;
        {
            const float4 *kr = reinterpret_cast<const float4 *>(ks + lane * KS);
#pragma unroll 2
            for (int d4 = 0; d4 < D / 4; d4++) {
                const float4 kk = kr[d4];
#pragma unroll
                for (int r = 0; r < ATT_ROWS; r++) {
                    const float4 qq = reinterpret_cast<const float4 *>(qs + (r0 + r) * D)[d4];
                    s[r] = fmaf(qq.x, kk.x, s[r]);
                    s[r] = fmaf(qq.y, kk.y, s[r]);
                    s[r] = fmaf(qq.z, kk.z, s[r]);
                    s[r] = fmaf(qq.w, kk.w, s[r]);
                }
            }
        }
        const bool in_tile = lane < nk;
        const bool key_ok = in_tile && (!use_mask || mask_b[j0 + lane] != 0);

        // Online softmax per row (all lanes take part in every shuffle).
        float p[ATT_ROWS];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            const int64_t i = i0 + r0 + r;
            float x;
            if (uniform) {
                x = in_tile ? 0.0f : -INFINITY;
            } else {
                x = scale * s[r];
                if (use_bias && in_tile && i < Lq) x += bias[(h * Lq + i) * Lk + j0 + lane];
                if (!key_ok) x = -INFINITY;
            }
            const float mt = warp_max(x);
            const float m_new = mt > m[r] ? mt : m[r];
            // Every key so far masked: this tile contributes nothing (p = 0,
            // m, l and acc unchanged).
            const bool none = m_new == -INFINITY;
            p[r] = none ? 0.0f : expf(x - m_new);
            const float sum = warp_sum(p[r]);
            const float alpha = none ? 1.0f : expf(m[r] - m_new);
#pragma unroll
            for (int t = 0; t < DPL; t++) acc[r][t] *= alpha;
            l[r] = l[r] * alpha + sum;
            m[r] = m_new;
        }

        // P V: p_j broadcast from lane j.
#pragma unroll 2
        for (int j = 0; j < nk; j++) {
            float pj[ATT_ROWS];
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) pj[r] = __shfl_sync(0xffffffffu, p[r], j);
            const float *vr = vs + j * D + lane;
#pragma unroll
            for (int t = 0; t < DPL; t++) {
                const float vv = vr[32 * t];
#pragma unroll
                for (int r = 0; r < ATT_ROWS; r++) acc[r][t] = fmaf(pj[r], vv, acc[r][t]);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        const int64_t i = i0 + r0 + r;
        if (i >= Lq) continue;
        const float inv = 1.0f / l[r];
        float *o = out + (b * Lq + i) * ld + h * HD + lane;
#pragma unroll
        for (int t = 0; t < DPL; t++)
            if (EXACT || lane + 32 * t < HD) o[32 * t] = acc[r][t] * inv;
    }
}

// Any head dim: one warp per query row (ANY_WARPS rows per block), q and the
// output accumulator of each row in shared memory, the keys walked one at a
// time with the same online softmax (a warp-wide dot product per key).
constexpr int ANY_WARPS = 4;

__global__ void __launch_bounds__(ANY_WARPS * 32)
attention_any_kernel(const float *__restrict__ q, const float *__restrict__ k,
                     const float *__restrict__ v, float *__restrict__ out, int64_t B, int64_t H,
                     int64_t Lq, int64_t Lk, int64_t D, float scale, const float *__restrict__ bias,
                     const int64_t *__restrict__ key_mask)
{
    extern __shared__ float4 any_smem4[];
    const int lane = (int)threadIdx.x & 31;
    const int warp = (int)threadIdx.x >> 5;
    float *qs = reinterpret_cast<float *>(any_smem4) + (int64_t)warp * 2 * D;
    float *acc = qs + D;
    // Row index over (b, i, h), h fastest: neighbouring warps share keys.
    const int64_t row = (int64_t)blockIdx.x * ANY_WARPS + warp;
    const bool live = row < B * Lq * H;
    const int64_t h = live ? row % H : 0;
    const int64_t i = live ? (row / H) % Lq : 0;
    const int64_t b = live ? row / (H * Lq) : 0;
    const int64_t ld = H * D;
    const int64_t *mask_b = key_mask ? key_mask + b * Lk : nullptr;

    int any_key = 0;
    if (live && mask_b)
        for (int64_t j = lane; j < Lk && !any_key; j += 32) any_key = mask_b[j] != 0;
    const bool uniform = mask_b != nullptr && !__any_sync(0xffffffffu, any_key);
    if (!live) return;  // whole warps only: the row is per warp
    for (int64_t d = lane; d < D; d += 32) {
        qs[d] = q[(b * Lq + i) * ld + h * D + d];
        acc[d] = 0.0f;
    }
    __syncwarp();

    float m = -INFINITY, l = 0.0f;
    for (int64_t j = 0; j < Lk; j++) {
        const float *kj = k + (b * Lk + j) * ld + h * D;
        float s = 0.0f;
        for (int64_t d = lane; d < D; d += 32) s = fmaf(qs[d], kj[d], s);
        s = warp_sum(s);
        float x;
        if (uniform) {
            x = 0.0f;
        } else {
            x = scale * s;
            if (bias) x += bias[(h * Lq + i) * Lk + j];
            if (mask_b && mask_b[j] == 0) x = -INFINITY;
        }
        const float m_new = x > m ? x : m;
        if (m_new == -INFINITY) continue;  // every key so far masked
        const float alpha = expf(m - m_new);
        const float p = expf(x - m_new);
        const float *vj = v + (b * Lk + j) * ld + h * D;
        for (int64_t d = lane; d < D; d += 32) acc[d] = fmaf(p, vj[d], acc[d] * alpha);
        l = l * alpha + p;
        m = m_new;
    }
    const float inv = 1.0f / l;
    float *o = out + (b * Lq + i) * ld + h * D;
    for (int64_t d = lane; d < D; d += 32) o[d] = acc[d] * inv;
}

// Raises a kernel's dynamic shared memory limit when it needs more than the
// default 48 KiB; false when the device cannot give `bytes` to one block.
fy_status allow_smem(const void *kernel, size_t bytes, bool *fits)
{
    *fits = true;
    if (bytes <= (size_t)48 * 1024) return FY_OK;
    int device = 0, optin = 0;
    fy_status st = fy_cuda_check(cudaGetDevice(&device), "attention: cudaGetDevice");
    if (st == FY_OK)
        st = fy_cuda_check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                           "attention: cudaDeviceGetAttribute");
    if (st != FY_OK) return st;
    if (bytes > (size_t)optin) {
        *fits = false;
        return FY_OK;
    }
    // Per device, so on every launch (cheap).
    return fy_cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                         "attention: cudaFuncSetAttribute");
}

fy_status launch_attention_any(fy_cuda_ops *ops, const float *q, const float *k, const float *v, float *out,
                               int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale,
                               const float *bias, const int64_t *key_mask)
{
    const int64_t rows = B * Lq * H;
    const int64_t blocks = (rows + ANY_WARPS - 1) / ANY_WARPS;
    if (blocks > INT32_MAX)
        return fy_error(FY_ERR_UNSUPPORTED, "cuda attention: %lld query rows exceed the grid", (long long)rows);
    const size_t smem = (size_t)ANY_WARPS * 2 * (size_t)D * sizeof(float);
    bool fits = true;
    fy_status st = allow_smem((const void *)attention_any_kernel, smem, &fits);
    if (st != FY_OK) return st;
    if (!fits)
        return fy_error(FY_ERR_UNSUPPORTED, "cuda attention: head dim D=%lld needs %zu bytes of shared memory per "
                        "block, more than this GPU allows", (long long)D, smem);
    attention_any_kernel<<<(unsigned)blocks, ANY_WARPS * 32, smem, ops->stream>>>(q, k, v, out, B, H, Lq, Lk, D,
                                                                                   scale, bias, key_mask);
    return fy_cuda_launched("attention (any head dim)");
}

// The tiled kernel at tile width D; *ran false (nothing launched) when the
// device's shared memory cannot hold the tile.
template <int D, bool EXACT>
fy_status launch_attention(fy_cuda_ops *ops, const float *q, const float *k, const float *v,
                           float *out, int64_t B, int64_t H, int64_t Lq, int64_t Lk, float scale,
                           const float *bias, const int64_t *key_mask, int64_t d_real, bool *ran)
{
    *ran = false;
    const int64_t q_tiles = (Lq + ATT_BQ - 1) / ATT_BQ;
    const int64_t blocks = B * H * q_tiles;
    if (blocks > INT32_MAX)
        return fy_error(FY_ERR_UNSUPPORTED, "cuda attention: %lld blocks (B*H*ceil(Lq/%d)) exceed the grid",
                        (long long)blocks, ATT_BQ);
    const size_t smem = attention_smem_bytes<D>();
    bool fits = true;
    fy_status st = allow_smem((const void *)attention_kernel<D, EXACT>, smem, &fits);
    if (st != FY_OK || !fits) return st;
    attention_kernel<D, EXACT><<<(unsigned)blocks, ATT_THREADS, smem, ops->stream>>>(
        q, k, v, out, H, Lq, Lk, q_tiles, scale, bias, key_mask, d_real);
    *ran = true;
    return fy_cuda_launched("attention");
}

// The tiled kernel for D when one is compiled for it (exact or padded).
fy_status launch_tiled(fy_cuda_ops *ops, const float *q, const float *k, const float *v, float *out, int64_t B,
                       int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale, const float *bias,
                       const int64_t *key_mask, bool *ran)
{
    *ran = false;
#define FY_ATT(T, X) launch_attention<T, X>(ops, q, k, v, out, B, H, Lq, Lk, scale, bias, key_mask, D, ran)
    switch (D) {
    case 32: return FY_ATT(32, true);
    case 64: return FY_ATT(64, true);
    case 96: return FY_ATT(96, true);
    case 128: return FY_ATT(128, true);
    case 160: return FY_ATT(160, true);
    case 192: return FY_ATT(192, true);
    case 224: return FY_ATT(224, true);
    case 256: return FY_ATT(256, true);
    case 384: return FY_ATT(384, true);
    default: break;
    }
    if (D < 32) return FY_ATT(32, false);
    if (D < 64) return FY_ATT(64, false);
    if (D < 128) return FY_ATT(128, false);
#undef FY_ATT
    return FY_OK;
}

}  // namespace

extern "C" fy_status fy_cuda_attention(fy_cuda_ops *ops, const float *q, const float *k,
                                       const float *v, float *out, int64_t B, int64_t H,
                                       int64_t Lq, int64_t Lk, int64_t D, float scale,
                                       const float *bias, const int64_t *key_mask)
{
    // The CPU's checks and messages.
    if (B < 0 || H < 1 || Lq < 0 || Lk < 1 || D < 1 || H * D > INT32_MAX)
        return fy_error(FY_ERR_INVALID, "attention: bad sizes B=%lld H=%lld Lq=%lld Lk=%lld D=%lld",
                        (long long)B, (long long)H, (long long)Lq, (long long)Lk, (long long)D);
    if (B == 0 || Lq == 0) return FY_OK;
    bool ran = false;
    fy_status st = fy_cuda_attention_tc(ops, q, k, v, out, B, H, Lq, Lk, D, scale, bias, key_mask, &ran);
    if (st != FY_OK || ran) return st;
    st = launch_tiled(ops, q, k, v, out, B, H, Lq, Lk, D, scale, bias, key_mask, &ran);
    if (st != FY_OK || ran) return st;
    return launch_attention_any(ops, q, k, v, out, B, H, Lq, Lk, D, scale, bias, key_mask);
}
