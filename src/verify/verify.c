/* `ferry verify`: the comparison primitives and the driver that runs each
 * registered component against its golden fixture file. */
#include "verify/verify.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/error.h"
#include "verify/verify_flux.h"

/* Wide enough for "transformer/block.12.output" style names. */
#define NAME_COLUMN 44

/* ---- Comparisons ------------------------------------------------------------ */

fy_status fy_relative_error(const fy_tensor *ours, const fy_tensor *ref, double *out)
{
    if (!ours || !ref || !out) return fy_error(FY_ERR_INVALID, "fy_relative_error: NULL argument");
    if (!fy_tensor_same_shape(ours, ref)) {
        char a[96], b[96];
        return fy_error(FY_ERR_INVALID, "shape %s does not match the reference %s",
                        fy_tensor_shape_str(ours, a, sizeof a), fy_tensor_shape_str(ref, b, sizeof b));
    }
    fy_tensor x = {0}, y = {0};
    fy_status s = fy_tensor_to_f32(ours, &x);
    if (s == FY_OK) s = fy_tensor_to_f32(ref, &y);
    if (s == FY_OK) {
        const float *px = x.data, *py = y.data;
        double max_diff = 0.0, max_ref = 0.0;
        bool nan = false;
        for (int64_t i = 0; i < fy_tensor_numel(&y); i++) {
            double d = fabs((double)px[i] - (double)py[i]);
            if (isnan(d)) nan = true;
            else if (d > max_diff) max_diff = d;
            if (fabs((double)py[i]) > max_ref) max_ref = fabs((double)py[i]);
        }
        /* A zero reference makes the measure absolute rather than dividing by 0. */
        *out = nan ? NAN : (max_ref > 0.0 ? max_diff / max_ref : max_diff);
    }
    fy_tensor_free(&x);
    fy_tensor_free(&y);
    return s;
}

/* The relative error a GPU's arithmetic is held to against the CPU and the
 * fixtures: 1e-4 with --dtype f32 (exact f32 GEMMs, the default), 2e-2 with
 * --dtype bf16|f16 (tensor-core GEMMs, f32 accumulation); 0 on a host
 * device, whose ops are the reference. */
static double gpu_tolerance_floor(const fy_run_options *o)
{
    if (o->device != FY_DEVICE_CUDA) return 0.0;
    return o->compute_dtype == FY_F32 ? 1e-4 : 2e-2;
}

static void print_line(fy_verify_ctx *ctx, const char *name, const char *err, const char *tol, bool pass)
{
    if (!ctx->out) return;
    fprintf(ctx->out, "  %-*s %11s  %7s  %s\n", NAME_COLUMN, name, err, tol, pass ? "pass" : "FAIL");
    fflush(ctx->out);
}

static void count(fy_verify_ctx *ctx, bool pass)
{
    ctx->compared++;
    if (!pass) ctx->failed++;
}

fy_status fy_verify_compare(fy_verify_ctx *ctx, const char *name, const fy_tensor *ours, const fy_tensor *ref,
                            double tolerance)
{
    if (!ctx || !name || !ours || !ref) return fy_error(FY_ERR_INVALID, "fy_verify_compare: NULL argument");
    char err[32], tol[32];
    /* A GPU is held to its arithmetic's tolerance where a fixture's is tighter. */
    double floor = ctx->options ? gpu_tolerance_floor(ctx->options) : 0.0;
    /* bf16/f16 storage rounds every weight matrix once: bf16's tolerance. */
    if (ctx->options && fy_storage_is_narrow(ctx->options->storage_dtype) && floor < FY_VERIFY_NARROW_TOLERANCE)
        floor = FY_VERIFY_NARROW_TOLERANCE;
    if (floor < ctx->floor) floor = ctx->floor;
    if (tolerance < floor) tolerance = floor;
    snprintf(tol, sizeof tol, "%.0e", tolerance);
    if (!fy_tensor_same_shape(ours, ref)) {
        char a[96], b[96];
        print_line(ctx, name, "shape", tol, false);
        if (ctx->out)
            fprintf(ctx->out, "    ours %s, reference %s\n", fy_tensor_shape_str(ours, a, sizeof a),
                    fy_tensor_shape_str(ref, b, sizeof b));
        count(ctx, false);
        return FY_OK;
    }
    double rel = 0.0;
    FY_TRY(fy_relative_error(ours, ref, &rel));
    bool pass = rel <= tolerance; /* false for NaN */
    snprintf(err, sizeof err, "%.3e", rel);
    print_line(ctx, name, err, tol, pass);
    count(ctx, pass);
    return FY_OK;
}

static bool element_as_int(const fy_tensor *t, int64_t i, int64_t *out)
{
    const char *p = t->data;
    switch (t->dtype) {
    case FY_I64: *out = ((const int64_t *)p)[i]; return true;
    case FY_I32: *out = ((const int32_t *)p)[i]; return true;
    case FY_I16: *out = ((const int16_t *)p)[i]; return true;
    case FY_I8: *out = ((const int8_t *)p)[i]; return true;
    case FY_U32: *out = ((const uint32_t *)p)[i]; return true;
    case FY_U16: *out = ((const uint16_t *)p)[i]; return true;
    case FY_U8: *out = ((const uint8_t *)p)[i]; return true;
    case FY_BOOL: *out = ((const uint8_t *)p)[i] != 0; return true;
    case FY_F32: *out = (int64_t)((const float *)p)[i]; return ((const float *)p)[i] == (float)*out;
    case FY_F64: *out = (int64_t)((const double *)p)[i]; return ((const double *)p)[i] == (double)*out;
    default: return false;
    }
}

fy_status fy_verify_compare_ids(fy_verify_ctx *ctx, const char *name, const int64_t *ours, size_t n_ours,
                                const fy_tensor *ref)
{
    if (!ctx || !name || (!ours && n_ours) || !ref)
        return fy_error(FY_ERR_INVALID, "fy_verify_compare_ids: NULL argument");
    if (!fy_tensor_is_contiguous(ref))
        return fy_error(FY_ERR_INVALID, "%s: reference ids must be contiguous", name);
    size_t n_ref = (size_t)fy_tensor_numel(ref);
    size_t differ = 0;
    for (size_t i = 0; i < n_ref && i < n_ours; i++) {
        int64_t v;
        if (!element_as_int(ref, (int64_t)i, &v))
            return fy_error(FY_ERR_INVALID, "%s: reference of dtype %s cannot be compared as ids", name,
                            fy_dtype_name(ref->dtype));
        if (v != ours[i]) differ++;
    }
    char err[32];
    bool pass = differ == 0 && n_ours == n_ref;
    if (n_ours != n_ref) snprintf(err, sizeof err, "%zu!=%zu", n_ours, n_ref);
    else if (differ) snprintf(err, sizeof err, "%zu differ", differ);
    else snprintf(err, sizeof err, "equal");
    print_line(ctx, name, err, "exact", pass);
    count(ctx, pass);
    return FY_OK;
}

/* ---- The driver ---------------------------------------------------------------- */

/* The registry for the model folder's pipeline (Wan's unless it is Flux). */
static const fy_verifier *registry_for(const fy_model *m, size_t *n)
{
    return fy_verify_is_flux(m) ? fy_flux_verifiers(n) : fy_verifiers(n);
}

static const fy_verifier *find_verifier(const fy_model *m, const char *name, size_t len)
{
    size_t n = 0;
    const fy_verifier *all = registry_for(m, &n);
    for (size_t i = 0; i < n; i++) {
        if (strlen(all[i].component) == len && strncmp(all[i].component, name, len) == 0) return &all[i];
    }
    return NULL;
}

static fy_status unknown_component(const fy_model *m, const char *name, size_t len)
{
    char valid[256] = "";
    size_t n = 0;
    const fy_verifier *all = registry_for(m, &n);
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(valid);
        snprintf(valid + used, sizeof valid - used, "%s%s", i ? ", " : "", all[i].component);
    }
    return fy_error(FY_ERR_INVALID, "--component: unknown component \"%.*s\" (valid: %s)", (int)len, name, valid);
}

/* Marks the registry entries named in a comma list; every name must exist
 * and be implemented, since the user asked for it by name. */
static fy_status select_components(const fy_model *m, const char *list, bool *selected)
{
    size_t n = 0;
    const fy_verifier *all = registry_for(m, &n);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            const fy_verifier *v = find_verifier(m, p, len);
            if (!v) return unknown_component(m, p, len);
            if (!v->run) return fy_error(FY_ERR_UNSUPPORTED, "%s: not implemented in this build yet", v->component);
            selected[v - all] = true;
        }
        p += len;
        if (*p == ',') p++;
    }
    for (size_t i = 0; i < n; i++) {
        if (selected[i]) return FY_OK;
    }
    return fy_error(FY_ERR_INVALID, "--component: no component named in \"%s\"", list);
}

/* A GGUF transformer's weights are rounded once (to blocks of 4 to 8 bits,
 * or to f16/bf16), so what it and the pipeline after it produce is held to
 * a tolerance for the coarsest type in the file: about twice what the golden
 * tiny model measures (bench/RESULTS.md, "GGUF"); the K types, which its
 * 32-wide rows cannot hold, by their bits per weight between Q8_0 and Q4_0. */
static double quant_tolerance(fy_dtype t)
{
    switch (t) {
    case FY_F16: case FY_BF16: case FY_Q8_0: case FY_Q6_K: return FY_VERIFY_NARROW_TOLERANCE;
    case FY_Q5_K: return 5e-2;
    case FY_Q4_K: return 1e-1;
    case FY_Q4_0: return 3e-1;
    default: return 0.0;
    }
}

static bool is_gguf(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n >= 5 && strcmp(path + n - 5, ".gguf") == 0;
}

static double gguf_tolerance(const fy_model *m)
{
    double tol = 0.0;
    for (size_t i = 0; i < fy_model_component_count(m); i++) {
        const fy_component *c = fy_model_component_at(m, i);
        if (strcmp(c->name, "transformer") != 0 || !c->weights || !is_gguf(c->single_file)) continue;
        for (size_t k = 0; k < fy_st_set_count(c->weights); k++) {
            double t = quant_tolerance(fy_st_set_at(c->weights, k)->dtype);
            if (t > tol) tol = t;
        }
    }
    return tol;
}

static fy_status run_one(fy_verify_ctx *ctx, const fy_verifier *v)
{
    bool downstream = strcmp(v->component, "transformer") == 0 || strcmp(v->component, "pipeline") == 0;
    ctx->floor = downstream ? ctx->weights_tolerance : 0.0;
    if (ctx->floor > 0 && ctx->out)
        fprintf(ctx->out, "%s: GGUF transformer weights: compared at %.0e at least\n", v->component, ctx->floor);
    fy_st_file *fixture = NULL;
    if (v->fixture_file) {
        size_t len = strlen(ctx->fixture_dir) + 1 + strlen(v->fixture_file) + 1;
        char *path = malloc(len);
        if (!path) return fy_error(FY_ERR_NOMEM, "out of memory");
        snprintf(path, len, "%s/%s", ctx->fixture_dir, v->fixture_file);
        fy_status s = fy_st_open(path, &fixture);
        free(path);
        FY_TRY(s);
    }
    if (ctx->out) fprintf(ctx->out, "%s:\n", v->component);
    fy_status s = v->run(ctx, fixture);
    fy_st_close(fixture);
    if (s != FY_OK && strncmp(fy_error_message(), v->component, strlen(v->component)) != 0)
        fy_error_prefix(s, "%s: ", v->component);
    return s;
}

static fy_status check_fixture_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fy_error(FY_ERR_NOT_FOUND, "%s: no such fixture folder (expected e.g. wan-tiny/fixtures)", dir);
    return FY_OK;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    return snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path && stat(path, &st) == 0;
}

/* Whether the fixture folder covers v (a Wan2.1 fixture has no
 * transformer_2; a Wan2.2 one no scheduler_*.safetensors); else *why says
 * what is missing. */
static bool covered(const fy_verify_ctx *ctx, const fy_verifier *v, char *why, size_t n)
{
    const char *file = v->covered_by ? v->covered_by : v->fixture_file;
    if (file && !file_exists(ctx->fixture_dir, file)) {
        snprintf(why, n, "no %s in %s", file, ctx->fixture_dir);
        return false;
    }
    return true;
}

static fy_status run_selected(fy_verify_ctx *ctx, const bool *selected, bool explicit_list)
{
    size_t n = 0;
    const fy_verifier *all = registry_for(ctx->model, &n);
    if (ctx->out) fprintf(ctx->out, "  %-*s %11s  %7s  %s\n", NAME_COLUMN, "comparison", "rel-err", "tol", "result");
    for (size_t i = 0; i < n; i++) {
        if (explicit_list && !selected[i]) continue;
        if (!all[i].run) {
            if (ctx->out) fprintf(ctx->out, "%s: skipped (not implemented yet)\n", all[i].component);
            continue;
        }
        char why[4200];
        if (!explicit_list && !covered(ctx, &all[i], why, sizeof why)) {
            if (ctx->out) fprintf(ctx->out, "%s: skipped (%s)\n", all[i].component, why);
            continue;
        }
        FY_TRY(run_one(ctx, &all[i]));
    }
    return FY_OK;
}

fy_status fy_verify_run(const char *model_dir, const char *fixture_dir, const char *components,
                        const fy_run_options *options, FILE *out)
{
    if (!model_dir || !fixture_dir) return fy_error(FY_ERR_INVALID, "verify: model and fixture folders are required");
    fy_status s = check_fixture_dir(fixture_dir);
    fy_model *model = NULL;
    fy_model_sources src = fy_run_options_sources(options);
    if (s == FY_OK) s = fy_model_open_sources(model_dir, &src, &model);
    size_t n = 0;
    registry_for(model, &n);
    bool *selected = calloc(n ? n : 1, sizeof *selected);
    if (s == FY_OK && !selected) s = fy_error(FY_ERR_NOMEM, "out of memory");
    bool explicit_list = components && *components && strcmp(components, "all") != 0;
    if (s == FY_OK && explicit_list) s = select_components(model, components, selected);
    fy_run_options defaults;
    fy_run_options_init(&defaults);
    fy_verify_ctx ctx = {model, fixture_dir, options ? options : &defaults, out, 0, 0, 0.0, 0.0};
    if (s == FY_OK) ctx.weights_tolerance = gguf_tolerance(model);
    if (s == FY_OK) s = run_selected(&ctx, selected, explicit_list);
    fy_model_free(model);
    free(selected);
    if (s != FY_OK) return s;
    if (out) fprintf(out, "%d passed, %d failed\n", ctx.compared - ctx.failed, ctx.failed);
    if (ctx.compared == 0)
        return fy_error(FY_ERR_MISMATCH, "no comparison ran (no requested component is implemented in this build)");
    if (ctx.failed)
        return fy_error(FY_ERR_MISMATCH, "%d of %d comparisons failed", ctx.failed, ctx.compared);
    return FY_OK;
}
