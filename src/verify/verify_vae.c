/* The VAE verifier: decode, encode, the round trip, and a tiled decode with
 * the fixture's tiling next to the same latents decoded untiled. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/backend.h"
#include "ferry/engine.h"
#include "ferry/wan_vae.h"
#include "verify/verify_vae.h"

#define TOLERANCE 1e-4

typedef struct vae_case {
    fy_tensor decode_in, encode_in, tiled_in;
    int64_t tile_h, tile_w, stride_h, stride_w; /* __metadata__ info "tiling", pixels */
} vae_case;

static fy_status load_f32(const fy_st_file *f, const char *name, fy_tensor *out)
{
    fy_tensor view;
    FY_TRY(fy_st_view(f, name, &view));
    if (view.ndim != 5) return fy_error(FY_ERR_FORMAT, "%s: %s must have 5 dimensions", fy_st_path(f), name);
    return fy_tensor_to_f32(&view, out);
}

static fy_status tiling_key(const cJSON *t, const fy_st_file *f, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1)
        return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info tiling has no positive \"%s\"", fy_st_path(f), key);
    *out = (int64_t)v->valuedouble;
    return FY_OK;
}

static fy_status read_tiling(const fy_st_file *f, vae_case *t)
{
    const char *text = fy_st_metadata(f, "info");
    if (!text) return fy_error(FY_ERR_FORMAT, "%s: no \"info\" entry in __metadata__", fy_st_path(f));
    cJSON *info = cJSON_Parse(text);
    if (!info) return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info is not JSON", fy_st_path(f));
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(info, "tiling");
    fy_status st = tiling_key(tl, f, "tile_sample_min_height", &t->tile_h);
    if (st == FY_OK) st = tiling_key(tl, f, "tile_sample_min_width", &t->tile_w);
    if (st == FY_OK) st = tiling_key(tl, f, "tile_sample_stride_height", &t->stride_h);
    if (st == FY_OK) st = tiling_key(tl, f, "tile_sample_stride_width", &t->stride_w);
    cJSON_Delete(info);
    return st;
}

static fy_status read_case(const fy_st_file *f, vae_case *c)
{
    FY_TRY(load_f32(f, "decode.input", &c->decode_in));
    FY_TRY(load_f32(f, "encode.input", &c->encode_in));
    /* Not every fixture has a tiled case (the Wan2.2 ones do not). */
    if (!fy_st_find(f, "tiled.input")) return FY_OK;
    FY_TRY(load_f32(f, "tiled.input", &c->tiled_in));
    return read_tiling(f, c);
}

static void free_case(vae_case *c)
{
    fy_tensor_free(&c->decode_in);
    fy_tensor_free(&c->encode_in);
    fy_tensor_free(&c->tiled_in);
}

static fy_status create_engine(const fy_run_options *o, fy_engine **e)
{
    return o->vae_cpu_offload ? fy_engine_create_host(o, e) : fy_engine_create(o, e);
}

static fy_status compare(fy_verify_ctx *ctx, const fy_st_file *f, const char *name, float *data, const int64_t *shape)
{
    fy_tensor ref = {0};
    FY_TRY(load_f32(f, name, &ref));
    fy_tensor ours = fy_tensor_wrap(data, FY_F32, 5, shape, FY_HOST);
    fy_status st = fy_verify_compare(ctx, name, &ours, &ref, TOLERANCE);
    fy_tensor_free(&ref);
    return st;
}

static fy_status alloc5(const int64_t *shape, float **out)
{
    size_t n = 1;
    for (int i = 0; i < 5; i++) n *= (size_t)shape[i];
    *out = calloc(n, sizeof **out);
    return *out ? FY_OK : fy_error(FY_ERR_NOMEM, "vae verify: out of memory");
}

static fy_wan_vae_decode_shape decode_shape(const int64_t *ls)
{
    return (fy_wan_vae_decode_shape){ls[0], ls[2], ls[3], ls[4]};
}

static fy_wan_vae_encode_shape encode_shape(const int64_t *vs)
{
    return (fy_wan_vae_encode_shape){vs[0], vs[2], vs[3], vs[4]};
}

static fy_status decode_compare(fy_verify_ctx *ctx, const fy_st_file *f, fy_wan_vae *m, const fy_run_options *o,
                                const char *name, const int64_t *ls, const float *lat)
{
    fy_wan_vae_decode_shape s = decode_shape(ls);
    int64_t vs[5];
    float *video = NULL;
    FY_TRY(fy_wan_vae_decode_output_shape(m, &s, vs));
    FY_TRY(alloc5(vs, &video));
    fy_status st = fy_wan_vae_decode(m, &s, lat, o, video);
    if (st == FY_OK) st = compare(ctx, f, name, video, vs);
    free(video);
    return st;
}

/* encode -> moments, mean, logvar; then the round trip through our mean. */
static fy_status encode_compare(fy_verify_ctx *ctx, const fy_st_file *f, fy_wan_vae *m, const fy_run_options *o,
                                const fy_tensor *in)
{
    fy_wan_vae_encode_shape s = encode_shape(in->shape);
    int64_t ls[5], ms[5];
    float *moments = NULL, *mean = NULL, *logvar = NULL;
    FY_TRY(fy_wan_vae_encode_output_shape(m, &s, ls));
    memcpy(ms, ls, sizeof ms);
    ms[1] *= 2;
    fy_status st = alloc5(ms, &moments);
    if (st == FY_OK) st = alloc5(ls, &mean);
    if (st == FY_OK) st = alloc5(ls, &logvar);
    if (st == FY_OK) st = fy_wan_vae_encode(m, &s, in->data, o, moments, mean, logvar);
    if (st == FY_OK) st = compare(ctx, f, "encode.moments", moments, ms);
    if (st == FY_OK) st = compare(ctx, f, "encode.mean", mean, ls);
    if (st == FY_OK) st = compare(ctx, f, "encode.logvar", logvar, ls);
    if (st == FY_OK) st = decode_compare(ctx, f, m, o, "roundtrip.output", ls, mean);
    free(moments);
    free(mean);
    free(logvar);
    return st;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* The options of the untiled cases and of the fixture's tiled one. */
static void case_options(const fy_run_options *o, const vae_case *c, fy_run_options *untiled, fy_run_options *tiled)
{
    *untiled = *o;
    untiled->vae_tiling = false;
    /* an automatic tiling would not match the untiled references: make the tile cover the frame */
    untiled->vae_tile[0] = untiled->vae_tile[1] = 1 << 30;
    untiled->vae_tile_stride[0] = untiled->vae_tile_stride[1] = 1 << 30;
    *tiled = *o;
    tiled->vae_tiling = true;
    tiled->vae_tile[0] = (int)c->tile_h;
    tiled->vae_tile[1] = (int)c->tile_w;
    tiled->vae_tile_stride[0] = (int)c->stride_h;
    tiled->vae_tile_stride[1] = (int)c->stride_w;
}

/* The largest of every decode and encode the verifier runs. */
static fy_status reserve(fy_engine *e, fy_wan_vae *m, const vae_case *c, const fy_run_options *un,
                         const fy_run_options *ti)
{
    fy_wan_vae_encode_shape es = encode_shape(c->encode_in.shape);
    fy_wan_vae_decode_shape ds = decode_shape(c->decode_in.shape), ts = decode_shape(c->tiled_in.shape);
    int64_t ls[5];
    FY_TRY(fy_wan_vae_encode_output_shape(m, &es, ls));
    fy_wan_vae_decode_shape rs = decode_shape(ls);
    uint64_t bytes = fy_wan_vae_decode_activation_bytes(m, &ds, un);
    uint64_t enc = fy_wan_vae_encode_activation_bytes(m, &es, un);
    uint64_t round = fy_wan_vae_decode_activation_bytes(m, &rs, un);
    bool has_tiled = c->tiled_in.data != NULL;
    uint64_t tiled = has_tiled ? fy_wan_vae_decode_activation_bytes(m, &ts, ti) : 1;
    uint64_t untiled = has_tiled ? fy_wan_vae_decode_activation_bytes(m, &ts, un) : 1;
    if (!bytes || !enc || !round || !tiled || !untiled)
        return fy_error(FY_ERR_FORMAT, "vae verify: the fixture's shapes do not fit the VAE config");
    bytes = max_u64(max_u64(bytes, enc), max_u64(round, max_u64(tiled, untiled)));
    return fy_engine_reserve(e, bytes);
}

static fy_status run_cases(fy_verify_ctx *ctx, const fy_st_file *f, fy_wan_vae *m, const vae_case *c,
                           const fy_run_options *un, const fy_run_options *ti)
{
    FY_TRY(decode_compare(ctx, f, m, un, "decode.output", c->decode_in.shape, c->decode_in.data));
    FY_TRY(encode_compare(ctx, f, m, un, &c->encode_in));
    if (!c->tiled_in.data) return FY_OK;
    FY_TRY(decode_compare(ctx, f, m, ti, "tiled.output", c->tiled_in.shape, c->tiled_in.data));
    return decode_compare(ctx, f, m, un, "tiled.untiled_output", c->tiled_in.shape, c->tiled_in.data);
}

static fy_status run_model(fy_verify_ctx *ctx, const fy_st_file *f, const fy_component *comp, fy_engine *e)
{
    fy_wan_vae *m = NULL;
    vae_case c = {0};
    fy_run_options un, ti;
    fy_status st = fy_wan_vae_load(comp, e, FY_WAN_VAE_BOTH, &m);
    if (st == FY_OK) st = fy_wan_vae_set_threads(m, ctx->options->threads);
    if (st == FY_OK) st = read_case(f, &c);
    if (st == FY_OK) case_options(ctx->options, &c, &un, &ti);
    if (st == FY_OK) st = reserve(e, m, &c, &un, &ti);
    if (st == FY_OK) st = fy_engine_prepare(e);
    if (st == FY_OK) st = run_cases(ctx, f, m, &c, &un, &ti);
    fy_status fin = fy_engine_finish(e);
    if (st == FY_OK) st = fin;
    free_case(&c);
    fy_wan_vae_free(m);
    return st;
}

fy_status fy_verify_vae(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    const fy_component *comp = fy_model_component(ctx->model, "vae");
    if (!comp) return fy_error(FY_ERR_NOT_FOUND, "%s: the model has no vae component", fy_model_dir(ctx->model));
    fy_engine *e = NULL;
    FY_TRY(create_engine(ctx->options, &e));
    fy_status st = run_model(ctx, fixture, comp, e);
    fy_engine_free(e);
    return st;
}
