/* GGUF: ggml's block formats decoded against values worked out by hand from
 * the layouts (ferry/quant_gguf.h), the parser on good and hostile files
 * built here byte by byte (every prefix of a good file, unknown types, bad
 * magic, offsets out of range or misaligned, overlaps, absurd counts), and
 * the linear on quantised weights against the plain one on their f32 values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "ferry/finite.h"
#include "backend/cpu/cpu_ops.h"
#include "ferry/quant_gguf.h"
#include "ferry/safetensors.h"
#include "ferry/tensor.h"

/* f16 bit patterns of a few exact values. */
#define H_0_25 0x3400
#define H_0_5 0x3800
#define H_1 0x3C00
#define H_2 0x4000
#define H_INF 0x7C00

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ---- Blocks ----------------------------------------------------------------- */

static void test_q8_0(void **state)
{
    (void)state;
    uint8_t b[34];
    put16(b, H_0_5);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j - 16);
    float y[32];
    fy_gguf_dequantize_blocks(y, b, FY_Q8_0, 1);
    for (int j = 0; j < 32; j++) assert_true(y[j] == 0.5f * (float)(j - 16));
}

static void test_q4_0(void **state)
{
    (void)state;
    uint8_t b[18];
    put16(b, H_2);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    fy_gguf_dequantize_blocks(y, b, FY_Q4_0, 1);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == 2.0f * (float)(j - 8));       /* low nibbles: values 0..15 */
        assert_true(y[j + 16] == 2.0f * (float)(7 - j));  /* high nibbles: 16..31 */
    }
}

/* Eight 6-bit scales and mins, and their 12 packed bytes worked out by hand:
 * bytes 0-3 scales 0-3 with the top bits of scales 4-7 in bits 6-7, bytes 4-7
 * the same for the mins, bytes 8-11 the low nibbles of scale and min 4-7. */
static const uint8_t k_sc[8] = {1, 2, 3, 4, 33, 34, 35, 63};
static const uint8_t k_m[8] = {0, 1, 2, 3, 40, 41, 62, 63};
static const uint8_t k_packed[12] = {129, 130, 131, 196, 128, 129, 194, 195, 129, 146, 227, 255};

static void k_header(uint8_t *b)
{
    put16(b, H_1);        /* d */
    put16(b + 2, H_0_5);  /* dmin */
    memcpy(b + 4, k_packed, 12);
}

/* The 4-bit value of element e of a K block whose qs[i] = (i % 16) | (15 - i % 16) << 4:
 * sub-block j = e / 32 reads the low nibbles of qs[32 (j / 2) ...] when j is
 * even, the high ones when odd. */
static int k_nibble(int e)
{
    int j = e / 32, l = e % 32;
    return j % 2 ? 15 - l % 16 : l % 16;
}

static void test_q4_k(void **state)
{
    (void)state;
    uint8_t b[144];
    k_header(b);
    for (int i = 0; i < 128; i++) b[16 + i] = (uint8_t)(i % 16 | (15 - i % 16) << 4);
    float y[256];
    fy_gguf_dequantize_blocks(y, b, FY_Q4_K, 1);
    for (int e = 0; e < 256; e++) {
        int j = e / 32;
        assert_true(y[e] == (float)k_sc[j] * (float)k_nibble(e) - 0.5f * (float)k_m[j]);
    }
}

static void test_q5_k(void **state)
{
    (void)state;
    uint8_t b[176];
    k_header(b);
    for (int l = 0; l < 32; l++) b[16 + l] = (uint8_t)(0x55 ^ (l * 7)); /* qh: bit j is sub-block j's fifth bit */
    for (int i = 0; i < 128; i++) b[48 + i] = (uint8_t)(i % 16 | (15 - i % 16) << 4);
    float y[256];
    fy_gguf_dequantize_blocks(y, b, FY_Q5_K, 1);
    for (int e = 0; e < 256; e++) {
        int j = e / 32, l = e % 32;
        int q = k_nibble(e) + 16 * ((b[16 + l] >> j) & 1);
        assert_true(y[e] == (float)k_sc[j] * (float)q - 0.5f * (float)k_m[j]);
    }
}

static void test_q6_k(void **state)
{
    (void)state;
    uint8_t b[210];
    for (int i = 0; i < 128; i++) b[i] = (uint8_t)(i * 37 + 11);     /* ql */
    for (int i = 0; i < 64; i++) b[128 + i] = (uint8_t)(i * 53 + 5); /* qh */
    for (int k = 0; k < 16; k++) b[192 + k] = (uint8_t)(int8_t)(k - 8);
    put16(b + 208, H_0_25);
    float y[256];
    fy_gguf_dequantize_blocks(y, b, FY_Q6_K, 1);
    /* Element e: half n = e / 128; within it, group g = (e % 128) / 32 and
     * l = e % 32. Low 4 bits: ql[64n + l] (g 0, 2) or ql[64n + 32 + l]
     * (g 1, 3), low nibble for g < 2, high for g >= 2; high 2 bits: bits
     * 2g, 2g+1 of qh[32n + l]; value - 32; one int8 scale per 16 values. */
    for (int e = 0; e < 256; e++) {
        int n = e / 128, g = (e % 128) / 32, l = e % 32;
        uint8_t lo_byte = b[64 * n + (g % 2) * 32 + l];
        int lo = g < 2 ? lo_byte & 15 : lo_byte >> 4;
        int hi = (b[128 + 32 * n + l] >> (2 * g)) & 3;
        int q = (lo | hi << 4) - 32;
        assert_true(y[e] == 0.25f * (float)(e / 16 - 8) * (float)q);
    }
}

static void test_rows_and_sizes(void **state)
{
    (void)state;
    /* Two rows of 64 Q8_0 values: row 1 starts after two blocks (68 bytes). */
    uint8_t w[4 * 34];
    for (int blk = 0; blk < 4; blk++) {
        put16(w + 34 * blk, H_1);
        for (int j = 0; j < 32; j++) w[34 * blk + 2 + j] = (uint8_t)(blk * 32 + j);
    }
    float row[64];
    fy_gguf_dequantize_rows(row, w, FY_Q8_0, 1, 1, 64);
    for (int j = 0; j < 64; j++) assert_true(row[j] == (float)(int8_t)(uint8_t)(64 + j));
    int64_t shape[2] = {2, 64};
    fy_tensor t = fy_tensor_wrap(w, FY_Q8_0, 2, shape, FY_HOST);
    assert_int_equal(fy_tensor_nbytes(&t), sizeof w);
    fy_tensor r;
    assert_int_equal(fy_tensor_select(&t, 1, &r), FY_OK);
    assert_ptr_equal(r.data, w + 68);
    assert_int_not_equal(fy_tensor_slice(&t, 1, 32, 32, &r), FY_OK); /* inside a row of blocks */
    /* A non-finite scale is found; the integers never are. */
    size_t at = 0;
    assert_false(fy_find_nonfinite(w, FY_Q8_0, 128, &at));
    put16(w + 34 * 2, H_INF);
    assert_true(fy_find_nonfinite(w, FY_Q8_0, 128, &at));
    assert_int_equal(at, 64);
}

/* ---- The linear --------------------------------------------------------------- */

static uint32_t rng = 7u;

static uint8_t rbyte(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (uint8_t)(rng >> 24);
}

/* Random blocks with small finite f16 scales. */
static void random_blocks(uint8_t *w, fy_dtype t, int64_t n_blocks)
{
    size_t bytes = fy_dtype_block_bytes(t);
    for (int64_t i = 0; i < n_blocks; i++) {
        uint8_t *b = w + (size_t)i * bytes;
        for (size_t k = 0; k < bytes; k++) b[k] = rbyte();
        size_t at = t == FY_Q6_K ? 208 : 0;
        put16(b + at, (uint16_t)(0x2000 | (rbyte() & 0x3FF)));
        if (t == FY_Q4_K || t == FY_Q5_K) put16(b + 2, (uint16_t)(0x2000 | (rbyte() & 0x3FF)));
    }
}

static void test_linear_matches_f32(void **state)
{
    (void)state;
    const fy_dtype types[] = {FY_Q8_0, FY_Q4_0, FY_Q4_K, FY_Q5_K, FY_Q6_K};
    enum { M = 5, K = 512, N = 130 };
    fy_cpu_ctx *ctx = NULL;
    assert_int_equal(fy_cpu_ctx_create(2, &ctx), FY_OK);
    float *x = malloc(sizeof(float) * M * K), *w32 = malloc(sizeof(float) * N * K);
    float *b = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
    uint8_t *wq = malloc((size_t)N * K * 2);
    for (int i = 0; i < M * K; i++) x[i] = (float)(rbyte() - 128) / 64.0f;
    for (int i = 0; i < N; i++) b[i] = (float)(rbyte() - 128) / 16.0f;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int64_t blocks = (int64_t)N * K / fy_dtype_block(types[i]);
        random_blocks(wq, types[i], blocks);
        fy_gguf_dequantize_blocks(w32, wq, types[i], blocks);
        assert_int_equal(fy_cpu_linear(ctx, x, w32, b, ref, M, K, N), FY_OK);
        assert_int_equal(fy_cpu_linear_scaled(ctx, x, wq, types[i], NULL, 0, b, y, M, K, N), FY_OK);
        assert_memory_equal(y, ref, sizeof(float) * M * N);
    }
    /* Rows that are not whole blocks are refused. */
    assert_int_not_equal(fy_cpu_linear_scaled(ctx, x, wq, FY_Q4_K, NULL, 0, b, y, M, 32, 1), FY_OK);
    free(x);
    free(w32);
    free(b);
    free(y);
    free(ref);
    free(wq);
    fy_cpu_ctx_free(ctx);
}

/* ---- Files ---------------------------------------------------------------------- */

typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void put(gbuf *g, const void *data, size_t n)
{
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2 + 64;
        g->p = realloc(g->p, g->cap);
        assert_non_null(g->p);
    }
    memcpy(g->p + g->n, data, n);
    g->n += n;
}

static void put_u32(gbuf *g, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(g, b, 4);
}

static void put_u64(gbuf *g, uint64_t v)
{
    put_u32(g, (uint32_t)v);
    put_u32(g, (uint32_t)(v >> 32));
}

static void put_str(gbuf *g, const char *s)
{
    put_u64(g, strlen(s));
    put(g, s, strlen(s));
}

static void pad(gbuf *g, size_t align)
{
    static const uint8_t zeros[64];
    put(g, zeros, (align - g->n % align) % align);
}

/* What to spoil in the file make_file writes. */
typedef struct spoil {
    uint32_t version;       /* 0: 3 */
    uint32_t type1;         /* ggml type of the second tensor (0: Q8_0 = 8) */
    uint64_t offset1;       /* its offset (0: where it belongs) */
    uint64_t ne0_1;         /* its row length (0: 64) */
    uint32_t ndim1;         /* its rank (0: 2) */
    uint64_t tensors;       /* tensor count (0: 2) */
    uint32_t alignment;     /* general.alignment (0: 32) */
    const char *magic;      /* NULL: "GGUF" */
    const char *orig_shape; /* "2,2,32": comfy.gguf.orig_shape of the second tensor */
} spoil;

/* Two tensors: "a" F32 [2, 4] (ne 4, 2) and "b" Q8_0 [3, 64] (ne 64, 3). */
static uint8_t *make_file(const spoil *s, size_t *size)
{
    gbuf g = {0};
    put(&g, s->magic ? s->magic : "GGUF", 4);
    put_u32(&g, s->version ? s->version : 3);
    put_u64(&g, s->tensors ? s->tensors : 2);
    put_u64(&g, s->orig_shape ? 3 : 2);
    put_str(&g, "general.architecture");
    put_u32(&g, 8);
    put_str(&g, "wan");
    put_str(&g, "general.alignment");
    put_u32(&g, 4);
    put_u32(&g, s->alignment ? s->alignment : 32);
    if (s->orig_shape) {
        put_str(&g, "comfy.gguf.orig_shape.b");
        put_u32(&g, 9);
        put_u32(&g, 5); /* int32 */
        int d[3], n = sscanf(s->orig_shape, "%d,%d,%d", &d[0], &d[1], &d[2]);
        put_u64(&g, (uint64_t)n);
        for (int i = 0; i < n; i++) put_u32(&g, (uint32_t)d[i]);
    }
    put_str(&g, "a");
    put_u32(&g, 2);
    put_u64(&g, 4);
    put_u64(&g, 2);
    put_u32(&g, 0);
    put_u64(&g, 0);
    put_str(&g, "b");
    uint32_t ndim = s->ndim1 ? s->ndim1 : 2;
    put_u32(&g, ndim);
    put_u64(&g, s->ne0_1 ? s->ne0_1 : 64);
    for (uint32_t i = 1; i < ndim; i++) put_u64(&g, 3);
    put_u32(&g, s->type1 ? s->type1 : 8);
    put_u64(&g, s->offset1 ? s->offset1 : 32);
    pad(&g, s->alignment ? s->alignment : 32);
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    put(&g, a, sizeof a);
    pad(&g, 32);
    uint8_t blocks[6 * 34];
    for (int blk = 0; blk < 6; blk++) {
        put16(blocks + 34 * blk, H_0_5);
        for (int j = 0; j < 32; j++) blocks[34 * blk + 2 + j] = (uint8_t)(j + blk);
    }
    put(&g, blocks, sizeof blocks);
    *size = g.n;
    return g.p;
}

static fy_status open_spoiled(const spoil *s, fy_st_file **f, uint8_t **buf)
{
    size_t n = 0;
    *buf = make_file(s, &n);
    return fy_st_open_memory(*buf, n, "t.gguf", f);
}

static void test_good_file(void **state)
{
    (void)state;
    spoil s = {0};
    fy_st_file *f = NULL;
    uint8_t *buf = NULL;
    assert_int_equal(open_spoiled(&s, &f, &buf), FY_OK);
    assert_string_equal(fy_st_metadata(f, "general.architecture"), "wan");
    const fy_st_info *a = fy_st_find(f, "a"), *b = fy_st_find(f, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->dtype, FY_F32);
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 2); /* ne reversed */
    assert_int_equal(a->shape[1], 4);
    assert_true(((const float *)a->data)[7] == 8.0f);
    assert_int_equal(b->dtype, FY_Q8_0);
    assert_int_equal(b->shape[0], 3);
    assert_int_equal(b->shape[1], 64);
    assert_int_equal(b->nbytes, 6 * 34);
    fy_tensor t;
    assert_int_equal(fy_st_view(f, "b", &t), FY_OK);
    assert_int_equal(fy_tensor_nbytes(&t), 6 * 34);
    fy_st_close(f);
    free(buf);
    /* ComfyUI-GGUF's original shape, read whole as f32 through a set. */
    s.orig_shape = "2,3,32";
    assert_int_equal(open_spoiled(&s, &f, &buf), FY_OK);
    b = fy_st_find(f, "b");
    assert_int_equal(b->ndim, 3);
    assert_int_equal(b->shape[2], 32);
    fy_st_close(f);
    free(buf);
}

/* Every prefix of a good file fails with one message naming it. */
static void test_truncated(void **state)
{
    (void)state;
    spoil s = {0};
    size_t n = 0;
    uint8_t *buf = make_file(&s, &n);
    for (size_t len = 0; len < n; len++) {
        fy_st_file *f = NULL;
        fy_status st = fy_st_open_memory(buf, len, "cut.gguf", &f);
        if (st == FY_OK) {
            fy_st_close(f);
            fail_msg("a file cut at %zu of %zu bytes opened", len, n);
        }
        assert_non_null(strstr(fy_error_message(), "cut.gguf"));
    }
    free(buf);
}

static void test_bad_files(void **state)
{
    (void)state;
    static const struct {
        spoil s;
        const char *message;
    } cases[] = {
        {{.magic = "GGUX"}, "not a GGUF file"},
        {{.version = 1}, "GGUF version 1"},
        {{.type1 = 3}, "ggml type 3 (Q4_1)"},
        {{.type1 = 99}, "ggml type 99 (unknown)"},
        {{.offset1 = 4096}, "ends past the end of the file"},
        {{.offset1 = 16}, "not a multiple of the alignment"},
        {{.alignment = 16, .offset1 = 16}, "overlaps"},
        {{.alignment = 24}, "power of two"},
        {{.ne0_1 = 48}, "not whole 32-value blocks"},
        {{.ne0_1 = (uint64_t)1 << 62}, "a dimension of"},
        {{.ndim1 = 5}, "GGUF allows 1 to 4"},
        {{.tensors = (uint64_t)1 << 40}, "more than the file holds"},
        {{.orig_shape = "2,2,32"}, "does not fit tensor 'b'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fy_st_file *f = NULL;
        uint8_t *buf = NULL;
        fy_status st = open_spoiled(&cases[i].s, &f, &buf);
        if (st == FY_OK) fy_st_close(f);
        free(buf);
        assert_int_not_equal(st, FY_OK);
        if (!strstr(fy_error_message(), cases[i].message) || !strstr(fy_error_message(), "t.gguf"))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, fy_error_message(), cases[i].message);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0),          cmocka_unit_test(test_q4_0),
        cmocka_unit_test(test_q4_k),          cmocka_unit_test(test_q5_k),
        cmocka_unit_test(test_q6_k),          cmocka_unit_test(test_rows_and_sizes),
        cmocka_unit_test(test_linear_matches_f32), cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_truncated),     cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
