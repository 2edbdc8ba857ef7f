/* A diffusers model folder: model_index.json and one subfolder per component.
 *
 * What kind a component is (model with weights, scheduler, tokenizer,
 * processor) follows from its [library, class] pair, the way diffusers'
 * DiffusionPipeline.from_pretrained picks a loader, so folders saved by
 * diffusers open without any ferry-specific metadata. */
#include "ferry/model.h"
#include "ferry/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/finite.h"
#include "io/regular_file.h"
#include "io/single_file.h"

typedef enum component_kind {
    KIND_MODEL,
    KIND_SCHEDULER,
    KIND_TOKENIZER,
    KIND_PROCESSOR
} component_kind;

typedef struct component_slot {
    fy_component pub;
    char *dir;
} component_slot;

struct fy_model {
    char *dir;
    const char *variant;   /* "fp16", "bf16": weight files named as diffusers' variant= (NULL: none) */
    int variant_found;     /* components whose variant files exist */
    char variant_missing[256]; /* the others, named for a warning */
    fy_config *index;
    const char *class_name;
    component_slot *slots;
    size_t count;
    /* Single files: per component part, the file and whether it holds that
     * part alone; config_dir overrides inferred configs. */
    char *part_file[FY_WAN_PART_COUNT];
    bool part_only[FY_WAN_PART_COUNT];
    char *config_dir;
    bool config_only;      /* dir is config_dir: no weights expected in it */
};

/* ---- Paths ---------------------------------------------------------------- */

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    char *p = malloc(a + 1 + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool file_in(const char *dir, const char *name)
{
    char *p = join_path(dir, name);
    bool found = p && is_file(p);
    free(p);
    return found;
}

/* ---- Component kinds ------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static component_kind kind_of(const char *library, const char *class_name)
{
    if (strstr(class_name, "Tokenizer")) return KIND_TOKENIZER;
    if (strcmp(library, "diffusers") == 0 && strstr(class_name, "Scheduler")) return KIND_SCHEDULER;
    if (ends_with(class_name, "Processor") || ends_with(class_name, "FeatureExtractor")) return KIND_PROCESSOR;
    return KIND_MODEL;
}

static const char *config_name_of(component_kind kind)
{
    switch (kind) {
    case KIND_SCHEDULER: return "scheduler_config.json";
    case KIND_TOKENIZER: return "tokenizer_config.json";
    case KIND_PROCESSOR: return "preprocessor_config.json";
    case KIND_MODEL: break;
    }
    return "config.json";
}

static const char *weights_stem_of(const char *library)
{
    return strcmp(library, "transformers") == 0 ? "model" : "diffusion_pytorch_model";
}

/* ---- Opening -------------------------------------------------------------- */

/* A weights name that exists but is no regular file (a FIFO, a device, a
 * folder) is named as such rather than reported missing. */
static fy_status refuse_special(const char *dir, const char *name, const char *what)
{
    char *p = join_path(dir, name);
    if (!p) return fy_error(FY_ERR_NOMEM, "%s: out of memory", dir);
    struct stat st;
    fy_status s = FY_OK;
    if (stat(p, &st) == 0 && !S_ISREG(st.st_mode))
        s = fy_error(FY_ERR_IO, "%s: is %s, not a regular file (expected %s)", p, fy_file_kind(st.st_mode), what);
    free(p);
    return s;
}

static fy_status open_config(component_slot *s, component_kind kind)
{
    char *path = join_path(s->dir, config_name_of(kind));
    if (!path) return fy_error(FY_ERR_NOMEM, "%s: out of memory", s->dir);
    fy_status st = refuse_special(s->dir, config_name_of(kind), "a JSON config");
    if (st == FY_OK && is_file(path)) {
        st = fy_config_load(path, &s->pub.config);
    } else if (st == FY_OK && kind == KIND_MODEL) {
        st = fy_error(FY_ERR_NOT_FOUND, "%s: missing (every model component needs its %s)", path,
                      config_name_of(kind));
    }
    free(path);
    return st;
}



/* diffusers' variant names: stem.VARIANT.safetensors, or the sharded index
 * stem.safetensors.index.VARIANT.json (its shards are named in it). */
static fy_status open_variant(fy_model *m, component_slot *s, bool *opened)
{
    *opened = false;
    const char *stem = weights_stem_of(s->pub.library);
    char single[512], index[512];
    snprintf(single, sizeof single, "%s.%s.safetensors", stem, m->variant);
    snprintf(index, sizeof index, "%s.safetensors.index.%s.json", stem, m->variant);
    const char *name = file_in(s->dir, single) ? single : (file_in(s->dir, index) ? index : NULL);
    if (!name) {
        size_t at = strlen(m->variant_missing);
        snprintf(m->variant_missing + at, sizeof m->variant_missing - at, "%s%s", at ? ", " : "", s->pub.name);
        return FY_OK;
    }
    char *path = join_path(s->dir, name);
    if (!path) return fy_error(FY_ERR_NOMEM, "%s: out of memory", s->dir);
    fy_status st = fy_st_set_open(path, &s->pub.weights);
    free(path);
    *opened = st == FY_OK;
    m->variant_found += *opened;
    return st;
}

static fy_status open_weights(component_slot *s)
{
    const char *stem = weights_stem_of(s->pub.library);
    char single[256], index[256], bin[256];
    snprintf(single, sizeof single, "%s.safetensors", stem);
    snprintf(index, sizeof index, "%s.safetensors.index.json", stem);
    snprintf(bin, sizeof bin, "%s.bin", stem);
    FY_TRY(refuse_special(s->dir, single, "safetensors weights"));
    FY_TRY(refuse_special(s->dir, index, "a safetensors index"));
    if (!file_in(s->dir, single) && !file_in(s->dir, index)) {
        if (file_in(s->dir, bin))
            return fy_error(FY_ERR_UNSUPPORTED,
                            "%s: weights are in PyTorch .bin format; ferry reads safetensors only "
                            "(re-save with save_pretrained(..., safe_serialization=True))", s->dir);
        return fy_error(FY_ERR_NOT_FOUND, "%s: no weights: expected %s or %s", s->dir, single, index);
    }
    return fy_st_set_open_dir(s->dir, stem, &s->pub.weights);
}

/* Component names become path segments; refuse ones that would leave the folder. */
static bool safe_component_name(const char *name)
{
    return name[0] && !strchr(name, '/') && !strchr(name, '\\') && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

/* ---- Single files ------------------------------------------------------------ */

static int part_of(const char *component)
{
    if (strcmp(component, "transformer") == 0) return FY_WAN_TRANSFORMER;
    if (strcmp(component, "text_encoder") == 0) return FY_WAN_TEXT_ENCODER;
    if (strcmp(component, "vae") == 0) return FY_WAN_VAE;
    return -1;
}

static const char *flag_of(int part)
{
    return part == FY_WAN_TRANSFORMER ? "--transformer" : part == FY_WAN_VAE ? "--vae" : "--text-encoder";
}

/* <config_dir>/<component>/config.json when it exists, else the config the shapes imply. */
static fy_status single_config(fy_model *m, component_slot *s, int part)
{
    if (m->config_dir) {
        char *dir = join_path(m->config_dir, s->pub.name);
        char *path = dir ? join_path(dir, "config.json") : NULL;
        fy_status st = path ? FY_OK : fy_error(FY_ERR_NOMEM, "%s: out of memory", m->config_dir);
        bool found = path && is_file(path);
        if (found) st = fy_config_load(path, &s->pub.config);
        free(path);
        free(dir);
        if (st != FY_OK || found) return st;
    }
    char *json = NULL;
    FY_TRY(fy_wan_infer_config((fy_wan_part)part, s->pub.weights, &json));
    char label[1100];
    snprintf(label, sizeof label, "%s (the %s config its shapes imply)", m->part_file[part], s->pub.name);
    fy_status st = fy_config_parse(json, label, &s->pub.config);
    free(json);
    return st;
}

static fy_status open_single(fy_model *m, component_slot *s, int part)
{
    s->pub.single_file = m->part_file[part];
    FY_TRY(fy_single_file_open(m->part_file[part], (fy_wan_part)part, m->part_only[part], &s->pub.weights));
    return single_config(m, s, part);
}

static fy_status open_component(fy_model *m, const char *name, const char *library, const char *class_name)
{
    if (!safe_component_name(name))
        return fy_error(FY_ERR_FORMAT, "%s: component name \"%s\" is not a folder name",
                        fy_config_path(m->index), name);
    component_slot *s = &m->slots[m->count];
    memset(s, 0, sizeof *s);
    s->dir = join_path(m->dir, name);
    if (!s->dir) return fy_error(FY_ERR_NOMEM, "%s: out of memory", m->dir);
    s->pub.name = name;
    s->pub.library = library;
    s->pub.class_name = class_name;
    s->pub.dir = s->dir;
    m->count++; /* counted now so that fy_model_free releases a half-opened slot */
    int part = part_of(name);
    if (part >= 0 && m->part_file[part] && kind_of(library, class_name) == KIND_MODEL) return open_single(m, s, part);
    if (!is_dir(s->dir) && m->config_only && kind_of(library, class_name) == KIND_MODEL && part >= 0)
        return fy_error(FY_ERR_NOT_FOUND, "%s: no %s: pass its weights with %s FILE", m->dir, name, flag_of(part));
    if (!is_dir(s->dir))
        return fy_error(FY_ERR_NOT_FOUND, "%s: component folder missing (%s lists %s as [%s, %s])", s->dir,
                        fy_config_path(m->index), name, library, class_name);
    component_kind kind = kind_of(library, class_name);
    FY_TRY(open_config(s, kind));
    if (kind != KIND_MODEL) return FY_OK;
    bool opened = false;
    if (m->variant) FY_TRY(open_variant(m, s, &opened));
    if (opened) return FY_OK;
    fy_status st = open_weights(s);
    if (st == FY_ERR_NOT_FOUND && m->config_only && part >= 0)
        return fy_error(FY_ERR_NOT_FOUND, "%s: no weights for %s (a --config folder needs none): pass them with %s FILE",
                        s->dir, name, flag_of(part));
    return st;
}

/* A scalar (or null) value in model_index.json is a pipeline setting, not a component. */
static bool is_setting(const fy_config *index, const char *key)
{
    const char *text;
    double number;
    bool flag;
    bool scalar = !fy_config_has(index, key) || fy_config_string(index, key, &text) == FY_OK ||
                  fy_config_double(index, key, &number) == FY_OK || fy_config_bool(index, key, &flag) == FY_OK;
    fy_error_clear();
    return scalar;
}

static fy_status open_components(fy_model *m)
{
    size_t n = fy_config_key_count(m->index);
    m->slots = calloc(n ? n : 1, sizeof *m->slots);
    if (!m->slots) return fy_error(FY_ERR_NOMEM, "%s: out of memory", m->dir);
    for (size_t i = 0; i < n; i++) {
        const char *key = fy_config_key_at(m->index, i);
        const char *library = NULL, *class_name = NULL;
        /* "_class_name", "_diffusers_version" are metadata; scalars like
         * "boundary_ratio" or "expand_timesteps" are pipeline settings. */
        if (key[0] == '_' || is_setting(m->index, key)) continue;
        FY_TRY(fy_config_pair(m->index, key, &library, &class_name));
        if (!library) continue; /* [null, null]: an optional component left out */
        FY_TRY(open_component(m, key, library, class_name));
    }
    return FY_OK;
}

static fy_status check_model_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return fy_error(errno == ENOENT ? FY_ERR_NOT_FOUND : FY_ERR_IO, "%s: cannot open model folder: %s", dir,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fy_error(FY_ERR_INVALID, "%s: not a folder (expected a diffusers model folder with model_index.json)",
                        dir);
    return FY_OK;
}

static fy_status open_index(fy_model *m)
{
    char *path = join_path(m->dir, "model_index.json");
    if (!path) return fy_error(FY_ERR_NOMEM, "%s: out of memory", m->dir);
    fy_status s = FY_OK;
    if (!is_file(path)) {
        if (file_in(m->dir, "config.json"))
            s = fy_error(FY_ERR_NOT_FOUND,
                         "%s holds a single component (config.json) but no model_index.json; pass the model folder "
                         "above it", m->dir);
        else
            s = fy_error(FY_ERR_NOT_FOUND, "is this a diffusers model folder? expected model_index.json in %s",
                         m->dir);
    } else {
        s = fy_config_load(path, &m->index);
        if (s == FY_OK) s = fy_config_string(m->index, "_class_name", &m->class_name);
    }
    free(path);
    return s;
}

fy_status fy_model_open(const char *dir, fy_model **out)
{
    return fy_model_open_ex(dir, NULL, NULL, out);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static fy_status check_variant(const char *variant)
{
    if (!variant) return FY_OK;
    for (const char *p = variant; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return fy_error(FY_ERR_INVALID, "--variant \"%s\": a variant is a plain name such as fp16 or bf16",
                            variant);
    return variant[0] ? FY_OK : fy_error(FY_ERR_INVALID, "--variant needs a name such as fp16 or bf16");
}

fy_status fy_model_open_ex(const char *dir, const char *revision, const char *variant, fy_model **out)
{
    fy_model_sources src = {.revision = revision, .variant = variant};
    return fy_model_open_sources(dir, &src, out);
}

/* --model FILE: an all-in-one checkpoint (other files keep the folder's errors). */
static bool is_single_file(const char *model)
{
    return model && ends_with(model, ".safetensors") && is_file(model);
}

bool fy_model_sources_single(const fy_model_sources *src, const char *model)
{
    return (src && (src->transformer || src->text_encoder || src->vae || src->config_dir)) ||
           is_single_file(model);
}

static void free_sources(fy_model *m)
{
    for (int p = 0; p < FY_WAN_PART_COUNT; p++) free(m->part_file[p]);
    free(m->config_dir);
}

/* The single files named, an all-in-one file's components included, and the
 * folder standing in for the rest. */
static fy_status plan_sources(fy_model *m, const char **dir, const fy_model_sources *src)
{
    const char *model = *dir;
    const char *named[FY_WAN_PART_COUNT] = {0};
    named[FY_WAN_TRANSFORMER] = src->transformer;
    named[FY_WAN_TEXT_ENCODER] = src->text_encoder;
    named[FY_WAN_VAE] = src->vae;
    for (int p = 0; p < FY_WAN_PART_COUNT; p++) m->part_only[p] = named[p] != NULL;
    if (is_single_file(model)) {
        bool present[FY_WAN_PART_COUNT];
        FY_TRY(fy_single_file_parts(model, present));
        for (int p = 0; p < FY_WAN_PART_COUNT; p++)
            if (present[p] && !named[p]) named[p] = model;
        model = NULL;
    }
    for (int p = 0; p < FY_WAN_PART_COUNT; p++)
        if (named[p] && !(m->part_file[p] = strdup(named[p]))) return fy_error(FY_ERR_NOMEM, "out of memory");
    if (src->config_dir && !(m->config_dir = strdup(src->config_dir))) return fy_error(FY_ERR_NOMEM, "out of memory");
    if (!model || !model[0]) {
        if (!src->config_dir)
            return fy_error(FY_ERR_INVALID,
                            "single files hold no tokenizer or scheduler: pass --config DIR (a diffusers folder's "
                            "model_index.json and config files, tokenizer/ included; weights not needed) or --model DIR");
        model = src->config_dir;
    }
    m->config_only = src->config_dir && strcmp(model, src->config_dir) == 0;
    *dir = model;
    return FY_OK;
}

/* A model id found in the cache becomes its snapshot folder. */
static fy_status resolve_dir(const char **dir, const char *revision, char *snapshot, size_t size)
{
    if (!exists(*dir) && fy_model_is_id(*dir)) {
        FY_TRY(fy_model_resolve(*dir, revision, snapshot, size));
        *dir = snapshot;
    } else if (revision && revision[0]) {
        return fy_error(FY_ERR_INVALID, "--revision %s applies to a model id (ORG/NAME) in the Hugging Face cache; "
                        "%s is a folder: drop --revision", revision, *dir);
    }
    return check_model_dir(*dir);
}

static fy_status open_model(fy_model *m, const char *dir, const fy_model_sources *src)
{
    if (fy_model_sources_single(src, dir)) FY_TRY(plan_sources(m, &dir, src));
    char snapshot[8192];
    FY_TRY(resolve_dir(&dir, src->revision, snapshot, sizeof snapshot));
    size_t len = strlen(dir);
    m->dir = malloc(len + 1);
    if (!m->dir) return fy_error(FY_ERR_NOMEM, "%s: out of memory", dir);
    memcpy(m->dir, dir, len + 1);
    while (len > 1 && m->dir[len - 1] == '/') m->dir[--len] = '\0';
    FY_TRY(open_index(m));
    FY_TRY(open_components(m));
    if (m->variant && !m->variant_found)
        return fy_error(FY_ERR_NOT_FOUND, "%s: no component has weights of variant %s (files named "
                        "*.%s.safetensors); drop --variant or pick another", m->dir, m->variant, m->variant);
    if (m->variant && m->variant_missing[0])
        fy_warn("%s: no %s weight files for %s: loaded as stored without a variant", m->dir, m->variant,
                m->variant_missing);
    return FY_OK;
}

fy_status fy_model_open_sources(const char *dir, const fy_model_sources *src, fy_model **out)
{
    static const fy_model_sources none = {0};
    if (!src) src = &none;
    if (!out) return fy_error(FY_ERR_INVALID, "fy_model_open: out is NULL");
    *out = NULL;
    if (!fy_model_sources_single(src, dir) && (!dir || !dir[0]))
        return fy_error(FY_ERR_INVALID, "no model folder given");
    FY_TRY(check_variant(src->variant));
    fy_model *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "out of memory opening a model");
    m->variant = src->variant;
    fy_status s = open_model(m, dir, src);
    if (s != FY_OK) {
        fy_model_free(m);
        return s;
    }
    *out = m;
    return FY_OK;
}

void fy_model_free(fy_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->count; i++) {
        fy_config_free(m->slots[i].pub.config);
        fy_st_set_free(m->slots[i].pub.weights);
        free(m->slots[i].dir);
    }
    free(m->slots);
    free_sources(m);
    fy_config_free(m->index);
    free(m->dir);
    free(m);
}

const char *fy_model_dir(const fy_model *m)
{
    return m ? m->dir : "";
}

const char *fy_model_class(const fy_model *m)
{
    return m ? m->class_name : "";
}

const fy_config *fy_model_index(const fy_model *m)
{
    return m ? m->index : NULL;
}

size_t fy_model_component_count(const fy_model *m)
{
    return m ? m->count : 0;
}

const fy_component *fy_model_component_at(const fy_model *m, size_t i)
{
    return m && i < m->count ? &m->slots[i].pub : NULL;
}

const fy_component *fy_model_component(const fy_model *m, const char *name)
{
    for (size_t i = 0; m && name && i < m->count; i++) {
        if (strcmp(m->slots[i].pub.name, name) == 0) return &m->slots[i].pub;
    }
    fy_error(FY_ERR_NOT_FOUND, "%s: no component \"%s\" in model_index.json", m ? m->dir : "model",
             name ? name : "");
    return NULL;
}

fy_status fy_model_check_unchanged(const fy_model *m)
{
    for (size_t i = 0; m && i < m->count; i++) FY_TRY(fy_st_set_check_unchanged(m->slots[i].pub.weights));
    return FY_OK;
}

void fy_model_set_check_finite(fy_model *m, bool on)
{
    for (size_t i = 0; m && i < m->count; i++) m->slots[i].pub.skip_finite_check = !on;
}

/* A tensor the model needs that the single file lacks, by its name there. */
static fy_status missing_in_single(const fy_component *c, const char *name)
{
    char original[512];
    int part = part_of(c->name);
    if (part < 0 || fy_wan_name_from_diffusers((fy_wan_part)part, name, original, sizeof original) != FY_OK)
        snprintf(original, sizeof original, "%s", name);
    return fy_error(FY_ERR_NOT_FOUND, "%s: no tensor '%s' (diffusers' %s): the %s file is incomplete or of another "
                    "model", c->single_file, original, name, c->name);
}

static fy_status check_finite(const fy_component *c, const char *name, const fy_tensor *out)
{
    size_t at;
    if (!c->skip_finite_check && fy_find_nonfinite(out->data, out->dtype, (size_t)fy_tensor_numel(out), &at)) {
        const fy_st_file *f = fy_st_set_file_of(c->weights, name);
        return fy_error(FY_ERR_FORMAT, "%s: tensor %s holds NaN or infinity (element %zu): the weights are corrupt "
                        "(re-download the file; --no-check-weights skips this check)",
                        f ? fy_st_path(f) : c->dir, name, at);
    }
    return FY_OK;
}

fy_status fy_component_weight(const fy_component *c, const char *name, fy_tensor *out)
{
    if (!c || !name || !out) return fy_error(FY_ERR_INVALID, "fy_component_weight: NULL argument");
    if (!c->weights) return fy_error(FY_ERR_NOT_FOUND, "%s: component %s has no weights", c->dir, c->name);
    fy_status st = fy_st_set_view(c->weights, name, out);
    if (st == FY_ERR_NOT_FOUND && c->single_file) return missing_in_single(c, name);
    if (st != FY_OK) return st;
    return check_finite(c, name, out);
}

fy_status fy_component_weight_f32(const fy_component *c, const char *name, fy_tensor *out)
{
    FY_TRY(fy_component_weight(c, name, out));
    return fy_dtype_is_quant(out->dtype) ? fy_st_set_view_f32(c->weights, name, out) : FY_OK;
}

/* ---- Statistics ------------------------------------------------------------ */

/* One candidate block group: every tensor named `<prefix>.<index>.<rest>`. */
typedef struct block_entry {
    long index;
    uint64_t bytes;
} block_entry;

typedef struct block_group {
    char prefix[sizeof(((fy_block_stats *)0)->prefix)];
    block_entry *blocks;
    size_t count, cap;
    uint64_t total;
} block_group;

typedef struct group_table {
    block_group *groups;
    size_t count, cap;
} group_table;

static void group_table_free(group_table *t)
{
    for (size_t i = 0; i < t->count; i++) free(t->groups[i].blocks);
    free(t->groups);
}

static block_group *find_group(group_table *t, const char *prefix, size_t len)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strlen(t->groups[i].prefix) == len && memcmp(t->groups[i].prefix, prefix, len) == 0)
            return &t->groups[i];
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        block_group *g = realloc(t->groups, cap * sizeof *g);
        if (!g) return NULL;
        t->groups = g;
        t->cap = cap;
    }
    block_group *g = &t->groups[t->count++];
    memset(g, 0, sizeof *g);
    memcpy(g->prefix, prefix, len);
    g->prefix[len] = '\0';
    return g;
}

static fy_status group_add(block_group *g, long index, uint64_t bytes)
{
    g->total += bytes;
    for (size_t i = 0; i < g->count; i++) {
        if (g->blocks[i].index == index) {
            g->blocks[i].bytes += bytes;
            return FY_OK;
        }
    }
    if (g->count == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        block_entry *b = realloc(g->blocks, cap * sizeof *b);
        if (!b) return fy_error(FY_ERR_NOMEM, "out of memory counting blocks");
        g->blocks = b;
        g->cap = cap;
    }
    g->blocks[g->count++] = (block_entry){index, bytes};
    return FY_OK;
}

/* Length of an all-digit segment starting at s and ending in '.'; 0 if none. */
static size_t index_segment(const char *s, long *index)
{
    size_t n = 0;
    long v = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < 9) v = v * 10 + (s[n++] - '0');
    if (n == 0 || s[n] != '.') return 0;
    *index = v;
    return n;
}

/* Every `P.<int>.` in a name is a candidate, nested ones included
 * ("decoder.up_blocks" and "decoder.up_blocks.0.resnets"); the winner is
 * chosen by bytes, so outer groups beat the groups nested inside them. */
static fy_status add_candidates(group_table *t, const char *name, uint64_t bytes)
{
    for (size_t p = 1; name[p]; p++) {
        if (name[p - 1] != '.') continue;
        long index;
        if (!index_segment(name + p, &index)) continue;
        size_t len = p - 1;
        if (len == 0 || len >= sizeof(t->groups[0].prefix)) continue;
        block_group *g = find_group(t, name, len);
        if (!g) return fy_error(FY_ERR_NOMEM, "out of memory counting blocks");
        FY_TRY(group_add(g, index, bytes));
    }
    return FY_OK;
}

static void pick_dominant(const group_table *t, fy_block_stats *out)
{
    const block_group *best = NULL;
    for (size_t i = 0; i < t->count; i++) {
        const block_group *g = &t->groups[i];
        if (g->count < 2) continue; /* one block is not a repeated group */
        if (!best || g->total > best->total) best = g;
    }
    memset(out, 0, sizeof *out);
    if (!best) return;
    snprintf(out->prefix, sizeof out->prefix, "%s", best->prefix);
    out->count = (int)best->count;
    out->bytes_total = best->total;
    out->bytes_each_min = UINT64_MAX;
    for (size_t i = 0; i < best->count; i++) {
        uint64_t b = best->blocks[i].bytes;
        if (b < out->bytes_each_min) out->bytes_each_min = b;
        if (b > out->bytes_each_max) out->bytes_each_max = b;
    }
}

static uint64_t numel_of(const fy_st_info *info)
{
    uint64_t n = 1;
    for (int d = 0; d < info->ndim; d++) n *= (uint64_t)info->shape[d];
    return n;
}

fy_status fy_component_stats(const fy_component *c, fy_weight_stats *out)
{
    if (!c || !out) return fy_error(FY_ERR_INVALID, "fy_component_stats: NULL argument");
    memset(out, 0, sizeof *out);
    if (!c->weights) return FY_OK;
    group_table table = {0};
    fy_status s = FY_OK;
    size_t n = fy_st_set_count(c->weights);
    for (size_t i = 0; i < n && s == FY_OK; i++) {
        const fy_st_info *info = fy_st_set_at(c->weights, i);
        uint64_t numel = numel_of(info);
        out->params += numel;
        out->bytes += info->nbytes;
        if ((int)info->dtype >= 0 && info->dtype < FY_DTYPE_COUNT) out->params_by_dtype[info->dtype] += numel;
        out->tensors++;
        s = add_candidates(&table, info->name, info->nbytes);
    }
    if (s == FY_OK) pick_dominant(&table, &out->blocks);
    group_table_free(&table);
    return s;
}
