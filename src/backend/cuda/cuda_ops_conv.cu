// 3D convolution as im2col + GEMM (fy_cpu_conv3d's semantics), in chunks of
// output positions so that the column buffer stays bounded.
//
// Per batch item n: y_n [c_out, P] (P = t_out h_out w_out, row-major) =
// W [c_out, kvol] cols [kvol, P] (+ b), kvol = c_in kt kh kw, the kernel
// taps in W's order (ci, dt, dh, dw). A chunk of positions [p0, p0 + pc)
// fills cols [kvol, pc] (row-major) and is one GEMM writing the column block
// y_n[:, p0 : p0 + pc] (ld P). cuBLAS is column-major, so this is
//   y_chunk^T [pc, c_out] (ld P) = cols^T [pc, kvol] W^T [kvol, c_out]:
//   A = cols: row-major [kvol, pc] = column-major [pc, kvol] ld pc, op N
//   B = W:    row-major [c_out, kvol] = column-major [kvol, c_out] ld kvol, op N
//   C = y_n + p0: column-major [pc, c_out] ld P.
// A 1x1x1 kernel with stride 1 and no padding needs no columns: x_n
// [c_in, P] is cols already (A = x_n, ld P, one GEMM per item).
//
// The GEMM is cublasSgemm: exact f32 in f32 arithmetic, TF32 on the tensor
// cores in bf16 arithmetic (the handle's math mode, cuda_ops.c).
// Bias: a broadcast-add kernel after the GEMMs, as the CPU adds it after its
// sgemm.
#include <climits>
#include <cstdint>

#include "backend/cuda/cuda_ops_internal.h"

namespace {

// Column-buffer bound (f32 values).
constexpr int64_t kColFloats = (int64_t)(FY_CUDA_CONV_COLS_BYTES / sizeof(float));
enum { kSlotCols = 0 };

unsigned grid_for(size_t n)
{
    size_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

struct conv_geom {
    int64_t c_in, t, h, w;
    int64_t kt, kh, kw, st, sh, sw, pad_t0, pad_h0, pad_w0;
    int64_t ho, wo;
};

// cols[r * pc + j] = the input under kernel tap r at output position p0 + j
// of one batch item (x_n [c_in, t, h, w]); zero in the padding.
__global__ void im2col_kernel(float *cols, const float *x, conv_geom g, int64_t p0, int64_t pc,
                              int64_t kvol)
{
    const size_t count = (size_t)kvol * (size_t)pc;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        const int64_t r = (int64_t)(i / (size_t)pc), j = (int64_t)(i % (size_t)pc);
        const int64_t p = p0 + j;
        const int64_t ow = p % g.wo, oh = (p / g.wo) % g.ho, ot = p / (g.wo * g.ho);
        const int64_t dw = r % g.kw, dh = (r / g.kw) % g.kh, dt = (r / (g.kw * g.kh)) % g.kt;
        const int64_t ci = r / (g.kw * g.kh * g.kt);
        const int64_t ti = ot * g.st - g.pad_t0 + dt;
        const int64_t hi = oh * g.sh - g.pad_h0 + dh;
        const int64_t wi = ow * g.sw - g.pad_w0 + dw;
        float v = 0.0f;
        if (ti >= 0 && ti < g.t && hi >= 0 && hi < g.h && wi >= 0 && wi < g.w)
            v = x[((ci * g.t + ti) * g.h + hi) * g.w + wi];
        cols[i] = v;
    }
}

// y[(n * c_out + co) * P + p] += b[co] over y [batch, c_out, P].
__global__ void add_bias_kernel(float *y, const float *b, size_t count, size_t P, size_t c_out)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[(i / P) % c_out];
}

}  // namespace

extern "C" fy_status fy_cuda_conv3d(fy_cuda_ops *ops, const float *x, const float *w, const float *b,
                                    float *y, int64_t batch, const fy_conv3d_shape *s)
{
    int64_t to = 0, ho = 0, wo = 0;
    FY_TRY(fy_conv3d_out_size(s, &to, &ho, &wo));
    const int64_t kvol = s->c_in * s->kt * s->kh * s->kw;
    const int64_t P = to * ho * wo;
    if (batch < 0 || kvol > INT_MAX || P > INT_MAX || s->c_out > INT_MAX)
        return fy_error(FY_ERR_INVALID,
                        "cuda conv3d: sizes too large for one GEMM (batch %lld, c_out %lld, "
                        "c_in*kernel %lld, output positions %lld; cuBLAS takes int sizes)",
                        (long long)batch, (long long)s->c_out, (long long)kvol, (long long)P);
    if (batch == 0) return FY_OK;

    const int64_t in_item = s->c_in * s->t * s->h * s->w, out_item = s->c_out * P;
    const int pointwise = s->kt == 1 && s->kh == 1 && s->kw == 1 && s->st == 1 && s->sh == 1 &&
                          s->sw == 1 && s->pad_t0 == 0 && s->pad_t1 == 0 && s->pad_h0 == 0 &&
                          s->pad_h1 == 0 && s->pad_w0 == 0 && s->pad_w1 == 0;
    const float one = 1.0f, zero = 0.0f;
    const int c_out = (int)s->c_out;

    if (pointwise) {
        for (int64_t n = 0; n < batch; n++)
            FY_TRY(fy_cublas_check(cublasSgemm(ops->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)P, c_out,
                                               (int)kvol, &one, x + n * in_item, (int)P, w, (int)kvol,
                                               &zero, y + n * out_item, (int)P),
                                   "cublasSgemm (conv3d 1x1x1)"));
    } else {
        int64_t pc_max = kColFloats / kvol;
        if (pc_max < 1) pc_max = 1;
        if (pc_max > P) pc_max = P;
        void *buf = NULL;
        FY_TRY(fy_cuda_ops_scratch(ops, kSlotCols, (size_t)kvol * (size_t)pc_max * sizeof(float), &buf));
        float *cols = (float *)buf;
        const conv_geom g = {s->c_in, s->t,  s->h,      s->w,      s->kt,     s->kh, s->kw, s->st,
                             s->sh,   s->sw, s->pad_t0, s->pad_h0, s->pad_w0, ho,    wo};
        for (int64_t n = 0; n < batch; n++) {
            for (int64_t p0 = 0; p0 < P; p0 += pc_max) {
                const int64_t pc = P - p0 < pc_max ? P - p0 : pc_max;
                im2col_kernel<<<grid_for((size_t)kvol * (size_t)pc), 256, 0, ops->stream>>>(
                    cols, x + n * in_item, g, p0, pc, kvol);
                FY_TRY(fy_cuda_launched("conv3d im2col"));
                FY_TRY(fy_cublas_check(cublasSgemm(ops->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)pc,
                                                   c_out, (int)kvol, &one, cols, (int)pc, w,
                                                   (int)kvol, &zero, y + n * out_item + p0, (int)P),
                                       "cublasSgemm (conv3d)"));
            }
        }
    }
    if (b) {
        const size_t count = (size_t)batch * (size_t)out_item;
        add_bias_kernel<<<grid_for(count), 256, 0, ops->stream>>>(y, b, count, (size_t)P,
                                                                (size_t)s->c_out);
        FY_TRY(fy_cuda_launched("conv3d bias"));
    }
    return FY_OK;
}
