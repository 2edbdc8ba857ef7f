/* Run options: one table of flags shared by every command. Each flag has a
 * setter that parses its value; a bad value fails with one line naming the
 * flag, the value and the choices, so typos never fall back to a default. */
#include "ferry/options.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/safetensors.h"
#include "mem/pool.h"

void fy_run_options_init(fy_run_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = FY_DEVICE_CPU;
    o->offload = FY_OFFLOAD_NONE;
    o->num_blocks_per_group = 1;
    o->pin_cpu_memory = true;
    o->cfg_batch = true;
    o->check_weights = true;
    o->prefetch_depth = 1;
    o->collective_timeout = 300.0;
    o->resident_blocks = -1;
    o->device_map = FY_DEVICE_MAP_NONE;
    o->compute_dtype = FY_F32;
    o->storage_dtype = FY_DTYPE_COUNT;
    o->fp8_scale = FY_FP8_SCALE_ROW;
    o->vae_tile[0] = o->vae_tile[1] = 256;
    o->vae_tile_stride[0] = o->vae_tile_stride[1] = 192;
}

const char *fy_offload_policy_name(fy_offload_policy p)
{
    switch (p) {
    case FY_OFFLOAD_NONE: return "none";
    case FY_OFFLOAD_MODEL: return "model";
    case FY_OFFLOAD_SEQUENTIAL: return "sequential";
    case FY_OFFLOAD_GROUP: return "group";
    case FY_OFFLOAD_LAYERWISE: return "layerwise";
    }
    return "unknown";
}

const char *fy_device_kind_name(fy_device_kind k)
{
    switch (k) {
    case FY_DEVICE_CPU: return "cpu";
    case FY_DEVICE_EMU: return "emu";
    case FY_DEVICE_CUDA: return "cuda";
    }
    return "unknown";
}

/* ---- Value parsers ------------------------------------------------------- */

static fy_status bad_value(const char *flag, const char *value, const char *valid)
{
    return fy_error(FY_ERR_INVALID, "--%s: invalid value \"%s\" (valid: %s)", flag, value, valid);
}

static bool parse_long(const char *text, long min, long max, long *out)
{
    if (!text || !*text) return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < min || v > max) return false;
    *out = v;
    return true;
}

static fy_status set_int(const char *flag, const char *value, long min, long max, const char *valid, int *out)
{
    long v;
    if (!parse_long(value, min, max, &v)) return bad_value(flag, value, valid);
    *out = (int)v;
    return FY_OK;
}

/* A size that parsed but may not say what was meant: a warning, once per value. */
static void warn_ambiguous_size(const char *flag, const char *value, const char *size_text, uint64_t bytes)
{
    const char *note = fy_size_ambiguity(size_text);
    if (!note) return;
    char read_as[32];
    fy_warn("--%s %s: %s; read as %s", flag, value, note, fy_format_bytes(bytes, read_as, sizeof read_as));
}

static fy_status set_size(const char *flag, const char *value, uint64_t *out)
{
    uint64_t bytes;
    if (fy_parse_size(value, &bytes) != FY_OK)
        return bad_value(flag, value, "a size such as 6GiB, 6.5GB, 500MB or 6G (= 6GiB)");
    warn_ambiguous_size(flag, value, value, bytes);
    *out = bytes;
    return FY_OK;
}

static bool parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) return *out = true, true;
        if (strcasecmp(text, no[i]) == 0) return *out = false, true;
    }
    return false;
}

/* Only the words, not 1/0/on/off: a next argument that happens to be one
 * is not taken for a switch's value. */
static bool parse_bool_word(const char *text, bool *out)
{
    if (strcasecmp(text, "true") == 0) return *out = true, true;
    if (strcasecmp(text, "false") == 0) return *out = false, true;
    return false;
}

/* "cpu", "emu", "emu:N", "cuda", "cuda:N". */
static fy_status set_device(fy_run_options *o, const char *flag, const char *value)
{
    static const char *const valid = "cpu, emu, emu:N, cuda, cuda:N";
    static const struct { const char *name; fy_device_kind kind; } kinds[] = {
        {"cpu", FY_DEVICE_CPU}, {"emu", FY_DEVICE_EMU}, {"cuda", FY_DEVICE_CUDA}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t n = strlen(kinds[k].name);
        if (strncmp(value, kinds[k].name, n) != 0) continue;
        long index = 0;
        if (value[n] == ':' && kinds[k].kind != FY_DEVICE_CPU) {
            if (!parse_long(value + n + 1, 0, FY_MAX_DEVICES - 1, &index)) return bad_value(flag, value, valid);
        } else if (value[n] != '\0') {
            continue;
        }
        o->device = kinds[k].kind;
        o->device_index = (int)index;
        return FY_OK;
    }
    return bad_value(flag, value, valid);
}

/* Bit of --max-memory's key in the seen mask: devices 0..15, then cpu. */
#define MEMORY_KEY_CPU FY_MAX_DEVICES

/* A key given twice would silently keep the last budget: say which. */
static fy_status duplicate_key(const char *flag, const char *value, int key)
{
    if (key == MEMORY_KEY_CPU)
        return fy_error(FY_ERR_INVALID, "--%s: cpu is given twice in \"%s\": give each budget once", flag, value);
    return fy_error(FY_ERR_INVALID, "--%s: device %d is given twice in \"%s\" (a bare size is device 0's): give each "
                    "budget once", flag, key, value);
}

/* One "KEY=SIZE" entry of --max-memory; KEY is a device ordinal or "cpu".
 * *key gets its bit in the seen mask. */
static fy_status set_memory_entry(fy_run_options *o, const char *flag, char *entry, int *key_bit)
{
    static const char *const valid = "DEV=SIZE[,DEV=SIZE...] with DEV 0..15 or cpu, e.g. 0=6GiB,cpu=20GiB";
    char *eq = strchr(entry, '=');
    const char *key = eq ? entry : "0";
    const char *size_text = eq ? eq + 1 : entry;
    if (eq) *eq = '\0';
    if (strncmp(key, "cuda:", 5) == 0) key += 5;
    uint64_t bytes;
    if (fy_parse_size(size_text, &bytes) != FY_OK) {
        if (eq) *eq = '=';
        return bad_value(flag, entry, valid);
    }
    /* 0 would read as "no limit" while 1B is refused as too small: neither is meant. */
    if (bytes == 0) {
        if (eq) *eq = '=';
        return bad_value(flag, entry, "a size above zero; leave a device (or cpu) out to give it no limit");
    }
    warn_ambiguous_size(flag, size_text, size_text, bytes);
    long index;
    if (strcmp(key, "cpu") == 0) {
        o->max_memory_cpu = bytes;
        *key_bit = MEMORY_KEY_CPU;
    } else if (parse_long(key, 0, FY_MAX_DEVICES - 1, &index)) {
        o->max_memory[index] = bytes;
        *key_bit = (int)index;
    } else {
        if (eq) *eq = '=';
        return bad_value(flag, entry, valid);
    }
    return FY_OK;
}

/* Entries split by hand, not strtok: strtok skips empty entries ("0=5GiB,"),
 * which are typos to report, not to ignore. */
static fy_status set_max_memory(fy_run_options *o, const char *flag, const char *value)
{
    size_t len = strlen(value);
    if (!len) return bad_value(flag, value, "e.g. 6GiB or 0=6GiB,1=20GiB,cpu=20GiB");
    char *copy = malloc(len + 1);
    if (!copy) return fy_error(FY_ERR_NOMEM, "--%s: out of memory", flag);
    memcpy(copy, value, len + 1);
    fy_status s = FY_OK;
    unsigned seen = 0;
    for (char *e = copy, *next; e && s == FY_OK; e = next) {
        char *comma = strchr(e, ',');
        next = comma ? comma + 1 : NULL;
        if (comma) *comma = '\0';
        int key = 0;
        if (!*e)
            s = fy_error(FY_ERR_INVALID, "--%s: empty entry in \"%s\" (a stray comma?): give DEV=SIZE entries "
                         "separated by single commas, e.g. 0=6GiB,cpu=20GiB", flag, value);
        else if ((s = set_memory_entry(o, flag, e, &key)) == FY_OK && (seen & (1u << key)))
            s = duplicate_key(flag, value, key);
        seen |= 1u << key;
    }
    free(copy);
    return s;
}

/* "25GB/s", "500MB/s", "1.5GiB/s", "0" (unthrottled). A bare number is
 * refused: --max-memory reads one as bytes (accelerate's rule), so "6" here
 * would mean GB/s to one reader and 6 B/s to another. */
static fy_status set_bandwidth(fy_run_options *o, const char *flag, const char *value)
{
    static const char *const valid = "a rate such as 25GB/s, 500MB/s, 12GiB/s, or 0 for unthrottled";
    static const struct { const char *unit; double scale; } units[] = {
        {"B", 1.0}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || !(v >= 0) || v > 1e18) return bad_value(flag, value, valid);
    char unit[16];
    size_t n = strlen(end);
    if (n >= 2 && strcmp(end + n - 2, "/s") == 0) n -= 2;
    if (n >= sizeof unit) return bad_value(flag, value, valid);
    memcpy(unit, end, n);
    unit[n] = '\0';
    if (!unit[0] && v == 0) return o->emu_bandwidth = 0, FY_OK;
    if (!unit[0])
        return fy_error(FY_ERR_INVALID, "--%s %s: a rate needs its unit (--max-memory reads a bare number as bytes): "
                        "give e.g. %sGB/s or %sMB/s", flag, value, value, value);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(unit, units[i].unit) != 0) continue;
        double rate = v * units[i].scale;
        if (rate > 0 && rate < FY_EMU_BANDWIDTH_MIN)
            return fy_error(FY_ERR_INVALID, "--%s %s: below the minimum of 1MB/s (slower copies look like a hang); "
                            "give at least 1MB/s, e.g. 25GB/s, or 0 for unthrottled", flag, value);
        o->emu_bandwidth = rate;
        return FY_OK;
    }
    return bad_value(flag, value, valid);
}

static fy_status set_offload(fy_run_options *o, const char *flag, const char *value)
{
    for (int p = FY_OFFLOAD_NONE; p <= FY_OFFLOAD_LAYERWISE; p++) {
        if (strcmp(value, fy_offload_policy_name((fy_offload_policy)p)) == 0) {
            o->offload = (fy_offload_policy)p;
            o->offload_explicit = true;
            return FY_OK;
        }
    }
    return bad_value(flag, value, "none, model, sequential, group, layerwise");
}

static fy_status set_device_map(fy_run_options *o, const char *flag, const char *value)
{
    if (strcmp(value, "none") == 0) o->device_map = FY_DEVICE_MAP_NONE;
    else if (strcmp(value, "balanced") == 0) o->device_map = FY_DEVICE_MAP_BALANCED;
    else if (strcmp(value, "auto") == 0) o->device_map = FY_DEVICE_MAP_AUTO;
    else return bad_value(flag, value, "balanced, auto, none");
    return FY_OK;
}

static fy_status set_dtype(fy_run_options *o, const char *flag, const char *value)
{
    fy_dtype t;
    if (fy_dtype_parse(value, &t) != FY_OK || (t != FY_F32 && t != FY_BF16 && t != FY_F16))
        return bad_value(flag, value, "f32, bf16, f16");
    o->compute_dtype = t;
    return FY_OK;
}

static fy_status set_storage_dtype(fy_run_options *o, const char *flag, const char *value)
{
    fy_dtype t;
    o->storage_explicit = true;
    o->storage_auto = strcmp(value, "auto") == 0;
    if (strcmp(value, "none") == 0 || o->storage_auto) {
        o->storage_dtype = FY_DTYPE_COUNT;
        return FY_OK;
    }
    if (fy_dtype_parse(value, &t) != FY_OK || (t != FY_F8_E4M3 && t != FY_F8_E5M2 && !fy_storage_is_narrow(t)))
        return bad_value(flag, value, "bf16, f16, fp8_e4m3, fp8_e5m2, auto (with --vram-budget), none (as stored)");
    o->storage_dtype = t;
    return FY_OK;
}

static fy_status set_fp8_scale(fy_run_options *o, const char *flag, const char *value)
{
    if (strcmp(value, "row") == 0) o->fp8_scale = FY_FP8_SCALE_ROW;
    else if (strcmp(value, "tensor") == 0) o->fp8_scale = FY_FP8_SCALE_TENSOR;
    else if (strcmp(value, "none") == 0) o->fp8_scale = FY_FP8_SCALE_NONE;
    else return bad_value(flag, value, "row, tensor, none");
    o->fp8_scale_explicit = true;
    return FY_OK;
}

/* "256" (square) or "256x320" (height x width), pixels, at least
 * FY_VAE_TILE_MIN: checked here, not first at the VAE decode after the
 * whole denoising loop. */
static fy_status set_pair(const char *flag, const char *value, int out[2])
{
    static const char *const valid = "N or HxW in pixels, each at least 8, e.g. 256 or 256x320";
    const char *x = strchr(value, 'x');
    long h, w;
    const long lo = FY_VAE_TILE_MIN;
    if (!x) {
        if (!parse_long(value, lo, 1 << 20, &h)) return bad_value(flag, value, valid);
        w = h;
    } else {
        char head[32];
        size_t n = (size_t)(x - value);
        if (n == 0 || n >= sizeof head) return bad_value(flag, value, valid);
        memcpy(head, value, n);
        head[n] = '\0';
        if (!parse_long(head, lo, 1 << 20, &h) || !parse_long(x + 1, lo, 1 << 20, &w))
            return bad_value(flag, value, valid);
    }
    out[0] = (int)h;
    out[1] = (int)w;
    return FY_OK;
}

/* A tile size means tiling; the stride follows it (a quarter overlap, as
 * diffusers' 256/192 defaults) unless given. */
static fy_status set_vae_tile(fy_run_options *o, const char *flag, const char *value)
{
    FY_TRY(set_pair(flag, value, o->vae_tile));
    o->vae_tile_explicit = true;
    o->vae_tiling = true;
    for (int d = 0; d < 2 && !o->vae_tile_stride_explicit; d++) {
        int stride = o->vae_tile[d] * 3 / 4 / 8 * 8;
        o->vae_tile_stride[d] = stride < FY_VAE_TILE_MIN ? FY_VAE_TILE_MIN : stride;
    }
    return FY_OK;
}

static fy_status set_vae_tile_stride(fy_run_options *o, const char *flag, const char *value)
{
    FY_TRY(set_pair(flag, value, o->vae_tile_stride));
    o->vae_tiling = true;
    o->vae_tile_stride_explicit = true;
    return FY_OK;
}

static fy_status set_revision(fy_run_options *o, const char *flag, const char *value)
{
    if (!*value) return bad_value(flag, value, "a branch, tag or commit of the model id");
    o->revision = value;
    return FY_OK;
}

static fy_status set_variant(fy_run_options *o, const char *flag, const char *value)
{
    if (!*value) return bad_value(flag, value, "fp16 or bf16 (diffusers' variant= file names)");
    o->variant = value;
    return FY_OK;
}

/* Single files and --config: paths, checked when the model opens. */
static fy_status set_path(const char *flag, const char *value, const char *what, const char **out)
{
    if (!*value) return bad_value(flag, value, what);
    *out = value;
    return FY_OK;
}

static fy_status set_transformer(fy_run_options *o, const char *flag, const char *value)
{
    return set_path(flag, value, "a .safetensors or .gguf file (original Wan or ComfyUI names)", &o->transformer_file);
}

static fy_status set_text_encoder(fy_run_options *o, const char *flag, const char *value)
{
    return set_path(flag, value, "a .safetensors file (UMT5, Wan's or ComfyUI's)", &o->text_encoder_file);
}

static fy_status set_vae(fy_run_options *o, const char *flag, const char *value)
{
    return set_path(flag, value, "a .safetensors file (the Wan VAE)", &o->vae_file);
}

static fy_status set_config_dir(fy_run_options *o, const char *flag, const char *value)
{
    return set_path(flag, value, "a diffusers folder's config files", &o->config_dir);
}

fy_model_sources fy_run_options_sources(const fy_run_options *o)
{
    fy_model_sources src = {0};
    if (!o) return src;
    src.revision = o->revision;
    src.variant = o->variant;
    src.transformer = o->transformer_file;
    src.text_encoder = o->text_encoder_file;
    src.vae = o->vae_file;
    src.config_dir = o->config_dir;
    return src;
}

static fy_status set_trace(fy_run_options *o, const char *flag, const char *value)
{
    if (!*value) return bad_value(flag, value, "a file path for the Chrome trace JSON");
    o->trace_path = value;
    return FY_OK;
}

static fy_status set_threads(fy_run_options *o, const char *flag, const char *value)
{
    return set_int(flag, value, 0, FY_THREADS_MAX, "0 (all cores) or a count from 1 to 1024", &o->threads);
}

static fy_status set_blocks_per_group(fy_run_options *o, const char *flag, const char *value)
{
    return set_int(flag, value, 1, INT_MAX, "an integer >= 1", &o->num_blocks_per_group);
}

static fy_status set_prefetch_depth(fy_run_options *o, const char *flag, const char *value)
{
    return set_int(flag, value, 1, FY_PREFETCH_DEPTH_MAX, "an integer from 1 to 64", &o->prefetch_depth);
}

static fy_status set_resident_blocks(fy_run_options *o, const char *flag, const char *value)
{
    return set_int(flag, value, 0, INT_MAX, "an integer >= 0", &o->resident_blocks);
}

static fy_status set_resident_bytes(fy_run_options *o, const char *flag, const char *value)
{
    return set_size(flag, value, &o->resident_bytes);
}

static fy_status set_max_shard_size(fy_run_options *o, const char *flag, const char *value)
{
    FY_TRY(set_size(flag, value, &o->max_shard_size));
    if (o->max_shard_size == 0) return bad_value(flag, value, "a size above zero, e.g. 5GB");
    return FY_OK;
}

static fy_status set_vram_budget(fy_run_options *o, const char *flag, const char *value)
{
    if (strcmp(value, "auto") == 0) {
        o->vram_budget_auto = true;
        o->vram_budget = 0;
        return FY_OK;
    }
    o->vram_budget_auto = false;
    FY_TRY(set_size(flag, value, &o->vram_budget));
    if (!o->vram_budget) return bad_value(flag, value, "a positive size such as 8GiB, or auto");
    return FY_OK;
}

static fy_status set_collective_timeout(fy_run_options *o, const char *flag, const char *value)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !(v > 0) || v > FY_COLLECTIVE_TIMEOUT_MAX)
        return bad_value(flag, value, "seconds above zero, at most 1000000 (11.6 days), e.g. 300 or 2.5");
    o->collective_timeout = v;
    return FY_OK;
}

/* ---- The flag table ------------------------------------------------------- */

typedef fy_status (*value_setter)(fy_run_options *o, const char *flag, const char *value);
typedef void (*switch_setter)(fy_run_options *o, bool on);

static void switch_layerwise(fy_run_options *o, bool on)
{
    o->offload_explicit = true;
    if (on) o->offload = FY_OFFLOAD_LAYERWISE;
    else if (o->offload == FY_OFFLOAD_LAYERWISE) o->offload = FY_OFFLOAD_NONE;
}

#define BOOL_FIELD(field) offsetof(fy_run_options, field)

typedef struct flag_spec {
    const char *name;
    value_setter set_value;    /* flags with a value */
    size_t bool_offset;        /* plain switches: the bool field */
    switch_setter set_switch;  /* switches with side effects */
} flag_spec;

#define VALUE(name, fn) {name, fn, 0, NULL}
#define SWITCH(name, field) {name, NULL, BOOL_FIELD(field), NULL}

static const flag_spec flags[] = {
    VALUE("device", set_device),
    VALUE("max-memory", set_max_memory),
    VALUE("emu-bandwidth", set_bandwidth),
    VALUE("offload", set_offload),
    {"dit-layerwise-offload", NULL, 0, switch_layerwise},
    VALUE("num-blocks-per-group", set_blocks_per_group),
    SWITCH("use-stream", use_stream),
    SWITCH("record-stream", record_stream),
    SWITCH("low-cpu-mem-usage", low_cpu_mem_usage),
    SWITCH("pin-cpu-memory", pin_cpu_memory),
    SWITCH("cfg-batch", cfg_batch),
    SWITCH("check-weights", check_weights),
    VALUE("prefetch-depth", set_prefetch_depth),
    VALUE("resident-blocks", set_resident_blocks),
    VALUE("resident-bytes", set_resident_bytes),
    VALUE("vram-budget", set_vram_budget),
    SWITCH("text-encoder-cpu-offload", text_encoder_cpu_offload),
    SWITCH("vae-cpu-offload", vae_cpu_offload),
    SWITCH("image-encoder-cpu-offload", image_encoder_cpu_offload),
    SWITCH("dit-cpu-offload", dit_cpu_offload),
    SWITCH("use-fsdp-inference", use_fsdp_inference),
    VALUE("collective-timeout", set_collective_timeout),
    VALUE("device-map", set_device_map),
    VALUE("dtype", set_dtype),
    VALUE("storage-dtype", set_storage_dtype),
    VALUE("fp8-scale", set_fp8_scale),
    SWITCH("vae-tiling", vae_tiling),
    SWITCH("vae-slicing", vae_slicing),
    VALUE("vae-tile", set_vae_tile),
    VALUE("vae-tile-stride", set_vae_tile_stride),
    VALUE("trace", set_trace),
    VALUE("revision", set_revision),
    VALUE("variant", set_variant),
    VALUE("transformer", set_transformer),
    VALUE("text-encoder", set_text_encoder),
    VALUE("vae", set_vae),
    VALUE("config", set_config_dir),
    VALUE("threads", set_threads),
    VALUE("max-shard-size", set_max_shard_size),
};

static const flag_spec *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0) return &flags[i];
    }
    return NULL;
}

static bool is_switch(const flag_spec *f)
{
    return f->set_value == NULL;
}

static void apply_switch(fy_run_options *o, const flag_spec *f, bool on)
{
    if (f->set_switch) f->set_switch(o, on);
    else *(bool *)((char *)o + f->bool_offset) = on;
}

static fy_status parse_switch(fy_run_options *o, const flag_spec *f, bool negated, const char *value)
{
    bool on = true;
    if (value && negated)
        return fy_error(FY_ERR_INVALID, "--no-%s takes no value (got \"%s\")", f->name, value);
    if (value && !parse_bool(value, &on)) return bad_value(f->name, value, "true, false (or no value)");
    apply_switch(o, f, negated ? false : on);
    return FY_OK;
}

/* The flag called name (no leading dashes), or its switch negated with "no-". */
static const flag_spec *lookup_flag(const char *name, size_t len, bool *negated)
{
    *negated = false;
    /* FastVideo's and Python's spelling: --dit_layerwise_offload. */
    char dashed[64];
    if (len < sizeof dashed && memchr(name, '_', len)) {
        for (size_t i = 0; i < len; i++) dashed[i] = name[i] == '_' ? '-' : name[i];
        name = dashed;
    }
    const flag_spec *f = find_flag(name, len);
    if (!f && len > 3 && strncmp(name, "no-", 3) == 0) {
        f = find_flag(name + 3, len - 3);
        *negated = f && is_switch(f);
        if (!*negated) f = NULL;
    }
    return f;
}

fy_status fy_run_options_set(fy_run_options *o, const char *name, const char *value)
{
    if (!o || !name) return fy_error(FY_ERR_INVALID, "fy_run_options_set: NULL options or name");
    while (*name == '-') name++;
    bool negated;
    const flag_spec *f = lookup_flag(name, strlen(name), &negated);
    if (!f) return fy_error(FY_ERR_INVALID, "unknown run option \"%s\"", name);
    if (is_switch(f)) return parse_switch(o, f, negated, value);
    if (!value) return fy_error(FY_ERR_INVALID, "--%s needs a value", f->name);
    return f->set_value(o, f->name, value);
}

bool fy_run_options_has(const char *name)
{
    bool negated;
    while (name && *name == '-') name++;
    return name && lookup_flag(name, strlen(name), &negated) != NULL;
}

const char *fy_run_options_flag_name(size_t i)
{
    return i < sizeof flags / sizeof flags[0] ? flags[i].name : NULL;
}

fy_run_options *fy_run_options_new(void)
{
    fy_run_options *o = malloc(sizeof *o);
    if (o) fy_run_options_init(o);
    else fy_error(FY_ERR_NOMEM, "out of memory for the run options");
    return o;
}

void fy_run_options_free(fy_run_options *o)
{
    free(o);
}

fy_status fy_run_options_parse_arg(fy_run_options *o, int argc, char **argv, int *i, bool *consumed)
{
    *consumed = false;
    if (!o || !argv || !i || *i < 0 || *i >= argc || !argv[*i]) return FY_OK;
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0) return FY_OK;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const char *value = eq ? eq + 1 : NULL;
    bool negated;
    const flag_spec *f = lookup_flag(name, len, &negated);
    if (!f) return FY_OK;
    *consumed = true;
    if (is_switch(f)) {
        (*i)++;
        /* FastVideo's --flag False / --flag True: the value as the next word. */
        bool ignored;
        if (!value && !negated && *i < argc && argv[*i] && parse_bool_word(argv[*i], &ignored)) value = argv[(*i)++];
        return parse_switch(o, f, negated, value);
    }
    if (!value) {
        if (*i + 1 >= argc || !argv[*i + 1] || strncmp(argv[*i + 1], "--", 2) == 0)
            return fy_error(FY_ERR_INVALID, "--%s needs a value (--%s VALUE or --%s=VALUE)", f->name, f->name,
                            f->name);
        value = argv[*i + 1];
        (*i)++;
    }
    (*i)++;
    return f->set_value(o, f->name, value);
}

/* ---- Cross-flag checks ----------------------------------------------------- */

static fy_status conflict(const char *what)
{
    return fy_error(FY_ERR_INVALID, "%s", what);
}

static fy_status validate_offload(const fy_run_options *o)
{
    if (o->num_blocks_per_group < 1) return conflict("--num-blocks-per-group must be at least 1");
    if (o->num_blocks_per_group != 1 && o->offload != FY_OFFLOAD_GROUP)
        return conflict("--num-blocks-per-group applies to --offload group only");
    if (o->prefetch_depth < 1 || o->prefetch_depth > FY_PREFETCH_DEPTH_MAX)
        return conflict("--prefetch-depth must be from 1 to 64");
    if (o->use_stream && o->offload != FY_OFFLOAD_GROUP)
        return conflict("--use-stream applies to --offload group only (layerwise always uses the copy stream)");
    if (o->record_stream && !o->use_stream) return conflict("--record-stream needs --use-stream");
    bool streaming = o->offload == FY_OFFLOAD_LAYERWISE || o->offload == FY_OFFLOAD_GROUP;
    if ((o->resident_blocks >= 0 || o->resident_bytes > 0) && !streaming)
        return conflict("--resident-blocks/--resident-bytes need --offload layerwise or group");
    if (o->resident_blocks >= 0 && o->resident_bytes > 0)
        return conflict("give --resident-blocks or --resident-bytes, not both");
    if (o->dit_cpu_offload && !o->use_fsdp_inference)
        return conflict("--dit-cpu-offload keeps FSDP shards in pinned host memory: it needs --use-fsdp-inference "
                        "(for one device, use --offload layerwise)");
    if (o->use_fsdp_inference && (o->offload_explicit || o->resident_blocks >= 0 || o->resident_bytes > 0 ||
                                  o->vram_budget > 0 || o->vram_budget_auto))
        return conflict("--use-fsdp-inference is its own plan (sharded blocks gathered through a ring of "
                        "--prefetch-depth + 1 slots): drop --offload, --resident-blocks/--resident-bytes and "
                        "--vram-budget");
    if (o->use_fsdp_inference && (o->storage_dtype != FY_DTYPE_COUNT || o->storage_auto))
        return conflict("--use-fsdp-inference with --storage-dtype is not supported yet: drop one of them");
    if (o->use_fsdp_inference && o->max_memory_cpu)
        return conflict("--use-fsdp-inference with a host budget (--max-memory cpu=) is not supported yet: each rank "
                        "already holds 1/N of the blocks; drop cpu= from --max-memory");
    if (o->use_fsdp_inference && o->device_map != FY_DEVICE_MAP_NONE)
        return conflict("--use-fsdp-inference with --device-map is not supported yet: drop one of them");
    bool planner = o->vram_budget > 0 || o->vram_budget_auto;
    if (planner && o->offload_explicit)
        return conflict("--vram-budget chooses the offload plan itself: drop --offload (or drop --vram-budget "
                        "to pick the plan by hand)");
    if (planner && (o->resident_blocks >= 0 || o->resident_bytes > 0 || o->num_blocks_per_group != 1))
        return conflict("--vram-budget chooses resident blocks itself: drop --resident-blocks/--resident-bytes");
    bool manual = o->offload_explicit || o->resident_blocks >= 0 || o->resident_bytes > 0;
    if (o->device_map == FY_DEVICE_MAP_AUTO && (planner || manual))
        return conflict("--device-map auto chooses what stays on the device itself: drop --vram-budget, --offload "
                        "and --resident-blocks/--resident-bytes (or drop --device-map auto)");
    return FY_OK;
}

static fy_status validate_device(const fy_run_options *o)
{
    if (o->device_index < 0 || o->device_index >= FY_MAX_DEVICES)
        return conflict("device index out of range (0..15)");
#ifndef FERRY_HAVE_CUDA
    if (o->device == FY_DEVICE_CUDA)
        return conflict("--device cuda: this build has no CUDA backend (rebuild with -DFERRY_CUDA=ON, "
                        "or use --device cpu or --device emu)");
#endif
    if (o->device == FY_DEVICE_CPU && o->emu_bandwidth > 0)
        return conflict("--emu-bandwidth applies to --device emu only");
    if (!(o->emu_bandwidth == 0 || (o->emu_bandwidth >= FY_EMU_BANDWIDTH_MIN && isfinite(o->emu_bandwidth))))
        return conflict("--emu-bandwidth must be 0 (unthrottled) or at least 1MB/s");
    /* balanced refused cpu only once the model was open; auto ran silently as
     * if no map were given: both are refused here, the same way. */
    if (o->device == FY_DEVICE_CPU && o->device_map != FY_DEVICE_MAP_NONE)
        return fy_error(FY_ERR_INVALID, "--device-map %s places components on devices: use --device emu or "
                        "--device cuda (with --max-memory 0=SIZE,1=SIZE), or drop --device-map",
                        o->device_map == FY_DEVICE_MAP_AUTO ? "auto" : "balanced");
    if (o->threads < 0 || o->threads > FY_THREADS_MAX)
        return conflict("--threads must be 0 (all cores) or a count from 1 to 1024");
    if (o->compute_dtype != FY_F32 && o->compute_dtype != FY_BF16 && o->compute_dtype != FY_F16)
        return conflict("--dtype must be f32, bf16 or f16");
    if (o->storage_dtype != FY_DTYPE_COUNT && o->storage_dtype != FY_F8_E4M3 && o->storage_dtype != FY_F8_E5M2 &&
        !fy_storage_is_narrow(o->storage_dtype))
        return conflict("--storage-dtype must be bf16, f16, fp8_e4m3 or fp8_e5m2");
    if (o->storage_auto && !(o->vram_budget > 0 || o->vram_budget_auto))
        return conflict("--storage-dtype auto lets the planner choose: it needs --vram-budget (or give "
                        "fp8_e4m3 or fp8_e5m2)");
    if (o->fp8_scale_explicit && (o->storage_dtype == FY_DTYPE_COUNT || fy_storage_is_narrow(o->storage_dtype)) &&
        !o->storage_auto)
        return conflict("--fp8-scale sets the scales of fp8 storage: add --storage-dtype fp8_e4m3 (or fp8_e5m2), "
                        "or drop --fp8-scale");
    return FY_OK;
}

static fy_status validate_vae(const fy_run_options *o)
{
    for (int d = 0; d < 2; d++) {
        if (o->vae_tile[d] < FY_VAE_TILE_MIN || o->vae_tile_stride[d] < FY_VAE_TILE_MIN)
            return conflict("--vae-tile and --vae-tile-stride must be at least 8 pixels");
        if (o->vae_tile_stride[d] > o->vae_tile[d])
            return fy_error(FY_ERR_INVALID,
                            "--vae-tile-stride %dx%d is larger than --vae-tile %dx%d: tiles would leave gaps",
                            o->vae_tile_stride[0], o->vae_tile_stride[1], o->vae_tile[0], o->vae_tile[1]);
    }
    return FY_OK;
}

fy_status fy_run_options_validate(const fy_run_options *o)
{
    if (!o) return fy_error(FY_ERR_INVALID, "fy_run_options_validate: NULL options");
    FY_TRY(validate_offload(o));
    FY_TRY(validate_device(o));
    return validate_vae(o);
}

/* ---- Files ----------------------------------------------------------------- */

/* The folder part of path ("." for a bare name, "/" for "/x") into buf. */
static void folder_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, size, ".");
    else if (slash == path) snprintf(buf, size, "/");
    else snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

fy_status fy_check_output_folder(const char *flag, const char *path)
{
    char dir[4096];
    folder_of(path, dir, sizeof dir);
    struct stat st;
    if (stat(dir, &st) != 0)
        return fy_error(FY_ERR_IO, "%s %s: the folder %s does not exist: create it, or give a path in an existing "
                        "folder", flag, path, dir);
    if (!S_ISDIR(st.st_mode))
        return fy_error(FY_ERR_IO, "%s %s: %s is not a folder: give a path in an existing folder", flag, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return fy_error(FY_ERR_IO, "%s %s: the folder %s is not writable: give a path in a folder you can write",
                        flag, path, dir);
    return FY_OK;
}

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

fy_status fy_check_output_file(const char *flag, const char *path)
{
    if (!path || !*path) return fy_error(FY_ERR_INVALID, "%s: empty path", flag);
    struct stat st;
    /* lstat: the rename into place would replace a link itself, not its target. */
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return fy_error(FY_ERR_IO, "%s %s: exists and is %s, which ferry does not replace: give a new file name%s",
                        flag, path, file_kind(st.st_mode), S_ISDIR(st.st_mode) ? " (e.g. inside that folder)" : "");
    if (path[strlen(path) - 1] == '/')
        return fy_error(FY_ERR_IO, "%s %s: names a folder: give a file name", flag, path);
    return fy_check_output_folder(flag, path);
}

fy_status fy_run_options_check_files(const fy_run_options *o)
{
    if (!o || !o->trace_path) return FY_OK;
    return fy_check_output_file("--trace", o->trace_path);
}

bool fy_storage_is_narrow(fy_dtype t)
{
    return t == FY_BF16 || t == FY_F16;
}

void fy_run_options_default_storage(fy_run_options *o)
{
    if (o->storage_explicit || o->storage_auto || o->use_fsdp_inference || o->device == FY_DEVICE_CPU) return;
    o->storage_dtype = FY_BF16;
}

/* MemAvailable of /proc/meminfo (or of the file $FERRY_MEMINFO names, for
 * tests), in bytes; 0 when unknown. */
static uint64_t mem_available(void)
{
    const char *path = getenv("FERRY_MEMINFO");
    FILE *f = fopen(path && *path ? path : "/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kib = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "MemAvailable: %llu kB", &kib) == 1;
    fclose(f);
    return found && kib < UINT64_MAX / 1024 ? (uint64_t)kib * 1024 : 0;
}

static void default_host_budget(fy_run_options *o)
{
    if (o->max_memory_cpu || o->device == FY_DEVICE_CPU || o->use_fsdp_inference) return;
    uint64_t avail = mem_available();
    /* The rest of the process (activations on the host, the VAE's frames,
     * libraries) and the system keep a tenth, at least 1 GiB. */
    uint64_t margin = avail / 10 > (1ull << 30) ? avail / 10 : (1ull << 30);
    if (avail <= margin) return;
    o->max_memory_cpu = avail - margin;
    o->host_budget_default = true;
}

void fy_run_options_default_plan(fy_run_options *o)
{
    default_host_budget(o);
    int d = o->device_index >= 0 && o->device_index < FY_MAX_DEVICES ? o->device_index : 0;
    bool chosen = o->vram_budget || o->vram_budget_auto || o->offload_explicit || o->resident_blocks >= 0 ||
                  o->resident_bytes > 0 || o->num_blocks_per_group != 1 || o->use_fsdp_inference ||
                  o->device_map != FY_DEVICE_MAP_NONE;
    if (chosen || o->device == FY_DEVICE_CPU || !o->max_memory[d]) return;
    o->vram_budget = o->max_memory[d];
    o->budget_from_max_memory = true;
}

const char *fy_storage_dtype_flag_name(fy_dtype t)
{
    switch (t) {
    case FY_F8_E4M3: return "fp8_e4m3";
    case FY_F8_E5M2: return "fp8_e5m2";
    case FY_DTYPE_COUNT: return "as stored";
    default: return fy_dtype_name(t);
    }
}

const char *fy_run_options_help(void)
{
    return "Device and memory:\n"
           "  --device cpu|emu|cuda[:N]       where to compute (default cpu; emu = budgeted host pool\n"
           "                                  with an asynchronous copy engine)\n"
           "  --max-memory SPEC               memory budgets: 6GiB, or 0=6GiB,1=20GiB,cpu=20GiB\n"
           "                                  (sizes as accelerate reads them: 6GiB = 6*2^30,\n"
           "                                  6GB = 6*10^9, 6.5GiB, 6G = 6GiB; 6gb is gigabits)\n"
           "  --emu-bandwidth RATE            emu copy speed with its unit, e.g. 25GB/s, 500MB/s\n"
           "                                  (at least 1MB/s; 0 = unthrottled)\n"
           "Offloading:\n"
           "  --offload none|model|sequential|group|layerwise\n"
           "  --dit-layerwise-offload         same as --offload layerwise\n"
           "  --num-blocks-per-group N        blocks per group (--offload group; default 1)\n"
           "  --use-stream                    group offload prefetches on the copy stream\n"
           "  --record-stream                 accepted for diffusers' scripts; ferry orders slot\n"
           "                                  reuse with events already (a warning says so)\n"
           "  --low-cpu-mem-usage             stage copies through a small pinned ring\n"
           "  --[no-]pin-cpu-memory           pin host weights (default on)\n"
           "  --prefetch-depth D              blocks in flight ahead of compute (1 to 64, default 1)\n"
           "  --no-cfg-batch                  guidance branches as two passes (default: one batch,\n"
           "                                  so weights move once per step)\n"
           "  --no-check-weights              skip the NaN/infinity scan of the weights at load\n"
           "  --resident-blocks K             keep K blocks on the device for good\n"
           "  --resident-bytes SIZE           keep blocks resident up to SIZE\n"
           "  --vram-budget SIZE|auto         let the planner choose the plan (resident blocks,\n"
           "                                  prefetch depth) that fits SIZE fastest; auto = free\n"
           "                                  device memory minus a margin (not with --offload)\n"
           "  --text-encoder-cpu-offload, --vae-cpu-offload, --image-encoder-cpu-offload\n"
           "  --device-map balanced           text encoder, transformer and VAE over the devices\n"
           "                                  given in --max-memory (0=8GiB,1=8GiB), largest first\n"
           "  --device-map auto               keep the blocks that fit device 0's --max-memory, then\n"
           "                                  the next ones on devices 1, 2, ..., stream the rest from\n"
           "                                  the host (one device: the planner's choice)\n"
           "Several processes (mpirun -np N ferry ...):\n"
           "  --use-fsdp-inference            shard every block over the N ranks; each block is\n"
           "                                  all-gathered just before it runs (prefetch depth D)\n"
           "  --dit-cpu-offload               keep each rank's shards in pinned host memory\n"
           "  --collective-timeout SECONDS    a rank that does not answer within this is an\n"
           "                                  error, not a hang (default 300, at most 1000000)\n"
           "Precision:\n"
           "  --dtype f32|bf16|f16            the GPU's GEMMs: f32 exact (default), bf16/f16 on the\n"
           "                                  tensor cores; cpu and emu compute in f32\n"
           "  --storage-dtype bf16|f16|fp8_e4m3|fp8_e5m2|auto|none  how weights are stored and moved:\n"
           "                                  bf16/f16: every f32 weight matrix converted once at\n"
           "                                  load (default bf16 on cuda and emu; none = as stored);\n"
           "                                  fp8: the transformer blocks' Linear weights (half of\n"
           "                                  bf16's bytes moved), upcast on use;\n"
           "                                  auto: the planner decides (needs --vram-budget)\n"
           "  --fp8-scale row|tensor|none     fp8 scale per output row (default), per tensor, none\n"
           "                                  (with --storage-dtype only)\n"
           "VAE:\n"
           "  --vae-tiling, --vae-slicing     decode in tiles / one video at a time\n"
           "  --vae-tile N|HxW                tile size in pixels (default 256, at least 8; turns\n"
           "                                  tiling on)\n"
           "  --vae-tile-stride N|HxW         tile stride in pixels (default 3/4 of the tile, at\n"
           "                                  least 8; turns tiling on)\n"
           "Other:\n"
           "  --threads N                     host threads (0 = all cores, at most 1024)\n"
           "  --revision REV                  with a model id (ORG/NAME, found in $HF_HOME/hub or\n"
           "                                  ~/.cache/huggingface/hub; never downloaded): a branch,\n"
           "                                  tag or commit (default main)\n"
           "  --variant fp16|bf16             read diffusers' variant weight files (*.fp16.safetensors)\n"
           "Single files (Wan models; original Wan or ComfyUI tensor names, configs from the shapes):\n"
           "  --transformer FILE              the transformer from one .safetensors file, or a .gguf\n"
           "                                  one (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K: kept\n"
           "                                  quantised, decoded in the linears; cpu and emu only)\n"
           "  --text-encoder FILE             the UMT5 text encoder (ComfyUI's scaled fp8 included)\n"
           "  --vae FILE                      the Wan2.1 VAE\n"
           "  --config DIR                    a diffusers folder's config files and tokenizer (no\n"
           "                                  weights needed): the rest of the model, and configs\n"
           "                                  that override the inferred ones; --model FILE takes\n"
           "                                  an all-in-one file\n"
           "  --trace FILE                    write a Chrome trace (JSON) of the run, one process\n"
           "                                  per engine (a new or regular file; not for plan)\n"
           "Switches also take =true/=false or a following True/False (FastVideo's --flag False);\n"
           "underscores read as dashes (--dit_layerwise_offload).\n";
}
