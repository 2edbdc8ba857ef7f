/* Single-file checkpoints: which component each tensor belongs to, its
 * diffusers name (ferry/wan_names.h), and ComfyUI's scaled fp8 weights
 * dequantised once at load (see single_file.h). */
#include "io/single_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "ferry/quant.h"

/* Prefixes all-in-one files put before a component's own names. */
typedef struct part_prefix {
    const char *prefix;
    fy_wan_part part;
} part_prefix;

static const part_prefix prefixes[] = {
    {"vae.", FY_WAN_VAE},
    {"first_stage_model.", FY_WAN_VAE},
    {"text_encoders.umt5xxl.transformer.", FY_WAN_TEXT_ENCODER},
    {"text_encoders.umt5xxl.", FY_WAN_TEXT_ENCODER},
    {"text_encoder.", FY_WAN_TEXT_ENCODER},
};

#define NAME_MAX_LEN 512

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The part and diffusers name of a tensor name in the file; false when it
 * is no Wan component's. */
static bool classify(const char *raw, fy_wan_part *part, char *mapped, size_t size)
{
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t len = strlen(prefixes[i].prefix);
        if (strncmp(raw, prefixes[i].prefix, len) != 0) continue;
        *part = prefixes[i].part;
        return fy_wan_name_to_diffusers(*part, raw + len, mapped, size) == FY_OK;
    }
    for (int p = 0; p < FY_WAN_PART_COUNT; p++) {
        if (fy_wan_name_to_diffusers((fy_wan_part)p, raw, mapped, size) == FY_OK) {
            *part = (fy_wan_part)p;
            return true;
        }
    }
    return false;
}

/* ComfyUI's scale beside an fp8 weight: "<layer>.scale_weight" (or the
 * newer "<layer>.weight_scale") for "<layer>.weight". */
static bool scale_stem(const char *raw, size_t *stem_len)
{
    static const char *const suffixes[] = {".scale_weight", ".weight_scale"};
    for (size_t i = 0; i < 2; i++) {
        if (ends_with(raw, suffixes[i])) {
            *stem_len = strlen(raw) - strlen(suffixes[i]);
            return true;
        }
    }
    return false;
}

static const fy_st_info *scale_of(const fy_st_file *f, const char *weight_name)
{
    char name[NAME_MAX_LEN];
    size_t len = strlen(weight_name);
    if (!ends_with(weight_name, ".weight") || len + 16 > sizeof name) return NULL;
    size_t stem = len - strlen(".weight");
    snprintf(name, sizeof name, "%.*s.scale_weight", (int)stem, weight_name);
    const fy_st_info *s = fy_st_find(f, name);
    if (s) return s;
    snprintf(name, sizeof name, "%.*s.weight_scale", (int)stem, weight_name);
    return fy_st_find(f, name);
}

static bool is_fp8(fy_dtype t)
{
    return t == FY_F8_E4M3 || t == FY_F8_E5M2;
}

/* ---- Naming ------------------------------------------------------------------ */

typedef struct naming {
    const char *path;
    fy_wan_part part;
    bool only;
    char **names;   /* per tensor of the file, NULL = left out */
    size_t kept;
} naming;

static fy_status check_scale(const fy_st_file *f, const char *path, const fy_st_info *t, size_t stem_len)
{
    char weight[NAME_MAX_LEN];
    snprintf(weight, sizeof weight, "%.*s.weight", (int)stem_len, t->name);
    const fy_st_info *w = fy_st_find(f, weight);
    if (!w || !is_fp8(w->dtype))
        return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' is a scale for '%s', which %s", path, t->name, weight,
                        w ? "is not stored in fp8" : "the file does not hold");
    return FY_OK;
}

/* A name of no Wan component: a diffusers file given as a single file is
 * told apart, since its folder is what to pass. */
static fy_status unknown_name(const naming *n, const char *name)
{
    static const char *const examples[FY_WAN_PART_COUNT] = {
        "blocks.0.self_attn.q.weight", "encoder.downsamples.0.residual.0.gamma",
        "blocks.0.attn.q.weight or encoder.block.0.layer.0.SelfAttention.q.weight"};
    char original[NAME_MAX_LEN];
    if (n->part != FY_WAN_TEXT_ENCODER && fy_wan_name_from_diffusers(n->part, name, original, sizeof original) == FY_OK)
        return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' is named as diffusers names it: pass the diffusers folder "
                        "with --model instead of the file", n->path, name);
    return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' is no Wan %s weight (expected the original Wan or ComfyUI names, "
                    "such as %s)", n->path, name, n->only ? fy_wan_part_name(n->part) : "model", examples[n->part]);
}

static fy_status name_one(naming *n, const fy_st_file *f, size_t i)
{
    const fy_st_info *t = fy_st_at(f, i);
    size_t stem_len;
    if (fy_wan_name_ignored(t->name)) return FY_OK;
    if (scale_stem(t->name, &stem_len)) return check_scale(f, n->path, t, stem_len);
    char mapped[NAME_MAX_LEN];
    fy_wan_part part;
    if (!classify(t->name, &part, mapped, sizeof mapped)) return unknown_name(n, t->name);
    if (part != n->part) {
        if (!n->only) return FY_OK;
        return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' is a %s weight, not a %s one (pass this file as --%s)",
                        n->path, t->name, fy_wan_part_name(part), fy_wan_part_name(n->part),
                        part == FY_WAN_TEXT_ENCODER ? "text-encoder" : fy_wan_part_name(part));
    }
    n->names[i] = malloc(strlen(mapped) + 1);
    if (!n->names[i]) return fy_error(FY_ERR_NOMEM, "%s: out of memory", n->path);
    strcpy(n->names[i], mapped);
    n->kept++;
    return FY_OK;
}

/* transformers ties the text encoder's embed_tokens to shared: one copy kept. */
static void drop_tied_copy(naming *n, const fy_st_file *f)
{
    size_t shared = SIZE_MAX, tied = SIZE_MAX;
    for (size_t i = 0; i < fy_st_count(f); i++) {
        if (!n->names[i] || strcmp(n->names[i], "shared.weight") != 0) continue;
        if (ends_with(fy_st_at(f, i)->name, "encoder.embed_tokens.weight")) tied = i;
        else shared = i;
    }
    if (shared == SIZE_MAX || tied == SIZE_MAX) return;
    free(n->names[tied]);
    n->names[tied] = NULL;
    n->kept--;
}

static fy_status name_all(naming *n, const fy_st_file *f)
{
    for (size_t i = 0; i < fy_st_count(f); i++) FY_TRY(name_one(n, f, i));
    if (n->part == FY_WAN_TEXT_ENCODER) drop_tied_copy(n, f);
    if (n->kept == 0)
        return fy_error(FY_ERR_FORMAT, "%s: holds no %s weights (%zu tensors, none of them named as Wan's %s's)",
                        n->path, fy_wan_part_name(n->part), fy_st_count(f), fy_wan_part_name(n->part));
    return FY_OK;
}

/* ---- fp8 ---------------------------------------------------------------------- */

static fy_status read_scale(const char *path, const fy_st_info *s, const fy_st_info *w, float **out, bool *per_row)
{
    uint64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (uint64_t)s->shape[d];
    int64_t rows = w->ndim ? w->shape[0] : 1;
    if (fy_dtype_size(s->dtype) == 0 || !(s->dtype == FY_F32 || s->dtype == FY_F16 || s->dtype == FY_BF16) ||
        (n != 1 && n != (uint64_t)rows))
        return fy_error(FY_ERR_FORMAT, "%s: scale '%s' must be one float or one per row of '%s' (%lld rows)", path,
                        s->name, w->name, (long long)rows);
    *out = malloc(n * sizeof **out);
    if (!*out) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    *per_row = n != 1;
    return fy_convert(*out, FY_F32, s->data, s->dtype, (size_t)n);
}

/* One fp8 weight as bf16: rows of f32 (the value times its scale, as
 * ComfyUI computes it) rounded once. */
static fy_status dequantize(const char *path, const fy_st_info *w, const fy_st_info *s, void **out)
{
    int64_t rows = w->ndim ? w->shape[0] : 1, numel = 1;
    for (int d = 0; d < w->ndim; d++) numel *= w->shape[d];
    int64_t cols = rows ? numel / rows : 0;
    float *scale = NULL;
    bool per_row = false;
    if (s) FY_TRY(read_scale(path, s, w, &scale, &per_row));
    uint16_t *dst = malloc((size_t)(numel ? numel : 1) * sizeof *dst);
    float *tmp = malloc((size_t)(cols ? cols : 1) * sizeof *tmp);
    fy_status st = dst && tmp ? FY_OK : fy_error(FY_ERR_NOMEM, "%s: out of memory dequantising '%s'", path, w->name);
    for (int64_t r = 0; st == FY_OK && r < rows; r++) {
        fy_fp8_dequantize_rows(tmp, w->data, w->dtype, scale, per_row, r, 1, cols);
        st = fy_convert(dst + r * cols, FY_BF16, tmp, FY_F32, (size_t)cols);
    }
    free(tmp);
    free(scale);
    if (st != FY_OK) {
        free(dst);
        return st;
    }
    *out = dst;
    return FY_OK;
}

static fy_status dequantize_fp8(fy_st_set *set, const fy_st_file *f, char *const *names, const char *path)
{
    for (size_t i = 0; i < fy_st_count(f); i++) {
        const fy_st_info *w = fy_st_at(f, i);
        if (!names[i] || !is_fp8(w->dtype)) continue;
        void *data = NULL;
        FY_TRY(dequantize(path, w, scale_of(f, w->name), &data));
        FY_TRY(fy_st_set_replace(set, names[i], FY_BF16, data));
    }
    return FY_OK;
}

/* ---- Opening --------------------------------------------------------------------- */

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

/* A GGUF file (city96's quantisations, ferry/quant_gguf.h) holds a Wan
 * transformer in the original names, architecture "wan". */
static fy_status check_gguf(const fy_st_file *f, const char *path, fy_wan_part part)
{
    const char *arch = fy_st_metadata(f, "general.architecture");
    size_t n = strlen(path);
    bool gguf = arch || (n >= 5 && strcmp(path + n - 5, ".gguf") == 0);
    if (!gguf) return FY_OK;
    if (part != FY_WAN_TRANSFORMER)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: ferry reads GGUF files for the Wan transformer only (--transformer), "
                        "not for the %s", path, fy_wan_part_name(part));
    if (!arch)
        return fy_error(FY_ERR_FORMAT, "%s: no general.architecture in the GGUF metadata; a Wan transformer's is "
                        "\"wan\"", path);
    if (strcmp(arch, "wan") != 0)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: general.architecture is \"%s\"; --transformer needs a GGUF of a Wan "
                        "transformer (\"wan\")", path, arch);
    return FY_OK;
}

fy_status fy_single_file_open(const char *path, fy_wan_part part, bool only, fy_st_set **out)
{
    *out = NULL;
    fy_st_file *f = NULL;
    FY_TRY(fy_st_open(path, &f));
    fy_status gguf = check_gguf(f, path, part);
    if (gguf != FY_OK) {
        fy_st_close(f);
        return gguf;
    }
    size_t count = fy_st_count(f);
    naming n = {path, part, only, calloc(count ? count : 1, sizeof(char *)), 0};
    fy_status st = n.names ? name_all(&n, f) : fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    if (st != FY_OK) {
        free_names(n.names, count);
        fy_st_close(f);
        return st;
    }
    fy_st_set *set = NULL;
    st = fy_st_set_from_file(f, (const char *const *)n.names, &set); /* takes f */
    if (st == FY_OK) st = dequantize_fp8(set, fy_st_set_file(set, 0), n.names, path);
    free_names(n.names, count);
    if (st != FY_OK) {
        fy_st_set_free(set);
        return st;
    }
    *out = set;
    return FY_OK;
}

fy_status fy_single_file_parts(const char *path, bool present[FY_WAN_PART_COUNT])
{
    for (int p = 0; p < FY_WAN_PART_COUNT; p++) present[p] = false;
    fy_st_file *f = NULL;
    FY_TRY(fy_st_open(path, &f));
    char mapped[NAME_MAX_LEN];
    for (size_t i = 0; i < fy_st_count(f); i++) {
        fy_wan_part part;
        if (classify(fy_st_at(f, i)->name, &part, mapped, sizeof mapped)) present[part] = true;
    }
    fy_st_close(f);
    return FY_OK;
}
