/* The flag loop that generate, plan and demo share: the run options first
 * (one parser for every command), log flags, the video settings by name,
 * then the command's own --flag VALUE / --flag=VALUE pairs. Short and
 * foreign spellings users bring from diffusers, FastVideo and
 * stable-diffusion.cpp are accepted where they mean the same thing, and
 * named with the nearest ferry flag where they do not. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* stable-diffusion.cpp's and diffusers' one-letter flags. */
static const struct { const char *short_name, *long_name; } short_flags[] = {
    {"-p", "--prompt"}, {"-n", "--negative-prompt"}, {"-W", "--width"}, {"-H", "--height"}, {"-o", "--output"},
};

/* Flags of other tools with no one-to-one ferry meaning: what to use instead. */
static const struct { const char *name, *advice; } foreign_flags[] = {
    {"--sampling-method", "ferry runs the model folder's own scheduler (scheduler/scheduler_config.json: UniPC for "
                          "Wan2.1); --flow-shift S changes its shift"},
    {"--scheduler", "ferry runs the model folder's own scheduler (scheduler/scheduler_config.json); --flow-shift S "
                    "changes its shift"},
    {"--offload-to-cpu", "weights kept in host memory and moved to the device when used are --offload model (whole "
                         "components) or --offload layerwise (block by block, prefetched)"},
    {"--num-gpus", "one process drives one device: for several, --device-map balanced|auto with --max-memory "
                   "0=SIZE,1=SIZE, or mpirun -np N ferry ... --use-fsdp-inference"},
    {"--enable-model-cpu-offload", "use --offload model"},
    {"--enable-sequential-cpu-offload", "use --offload sequential"},
    {"--vae-tiling-size", "use --vae-tile N (pixels)"},
};

/* "-p" -> "--prompt"; "--num_frames" -> "--num-frames" (into buf). */
static const char *canonical_flag(const char *flag, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof short_flags / sizeof short_flags[0]; i++)
        if (strcmp(flag, short_flags[i].short_name) == 0) return short_flags[i].long_name;
    if (strncmp(flag, "--", 2) != 0 || !strchr(flag, '_')) return flag;
    snprintf(buf, size, "%s", flag);
    for (char *c = buf + 2; *c; c++)
        if (*c == '_') *c = '-';
    return buf;
}

/* Splits "--flag=value" (value points into arg) or takes the next argument. */
static const char *flag_value(const char *arg, int argc, char **argv, int i, char *flag, size_t size, bool *inline_value)
{
    const char *eq = strchr(arg, '=');
    *inline_value = eq && (size_t)(eq - arg) < size && arg[0] == '-';
    if (*inline_value) {
        memcpy(flag, arg, (size_t)(eq - arg));
        flag[eq - arg] = '\0';
        return eq + 1;
    }
    snprintf(flag, size, "%s", arg);
    return arg[0] == '-' && i < argc ? argv[i] : NULL;
}

static bool in_list(const char *flag, const char *const *names)
{
    for (size_t i = 0; names && names[i]; i++)
        if (strcmp(flag, names[i]) == 0) return true;
    return false;
}

static bool is_param(const fy_wan_t2v_params *params, const char *flag)
{
    return params && strncmp(flag, "--", 2) == 0 && fy_wan_t2v_param_canonical(flag + 2);
}

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Edit distance (insertions, deletions, substitutions), capped inputs. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 64;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            row[j] = min3(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1]));
            diag = up;
        }
    }
    return row[lb];
}

typedef struct suggestion {
    const char *best;
    size_t distance;
} suggestion;

static void consider(suggestion *s, const char *typed, const char *candidate)
{
    size_t d = edit_distance(typed, candidate);
    /* A prefix of a long flag ("--num-inference") is as good as a typo. */
    size_t n = strlen(typed);
    if (n >= 6 && strncmp(candidate, typed, n) == 0 && d > 1) d = 1;
    if (d < s->distance) {
        s->best = candidate;
        s->distance = d;
    }
}

/* The nearest flag this command takes to flag, "" when none is near. */
static const char *nearest_flag(const char *flag, const fy_wan_t2v_params *params, const char *const *names,
                                char *buf, size_t size)
{
    const char *typed = flag;
    while (*typed == '-') typed++;
    suggestion s = {NULL, 64};
    for (size_t i = 0; names && names[i]; i++)
        if (strncmp(names[i], "--", 2) == 0) consider(&s, typed, names[i] + 2);
    for (size_t i = 0; params && fy_wan_t2v_param_name(i); i++) consider(&s, typed, fy_wan_t2v_param_name(i));
    for (size_t i = 0; fy_run_options_flag_name(i); i++) consider(&s, typed, fy_run_options_flag_name(i));
    size_t allowed = strlen(typed) < 6 ? 1 : strlen(typed) < 12 ? 2 : 3;
    if (!s.best || s.distance > allowed) return "";
    snprintf(buf, size, " (did you mean --%s?)", s.best);
    return buf;
}

static int unknown_flag(const char *cmd, const char *arg, const char *flag, const fy_wan_t2v_params *params,
                        const char *const *names)
{
    for (size_t i = 0; i < sizeof foreign_flags / sizeof foreign_flags[0]; i++)
        if (strcmp(flag, foreign_flags[i].name) == 0)
            return cli_usage_error(cmd, "unknown option \"%s\": %s", arg, foreign_flags[i].advice);
    char hint[96];
    return cli_usage_error(cmd, "unknown option \"%s\"%s", arg, nearest_flag(flag, params, names, hint, sizeof hint));
}

/* Flux's defaults differ from Wan's: which of them the user set. */
static void note_given(cli_given *given, const char *setting)
{
    if (!given) return;
    if (!strcmp(setting, "height")) given->height = true;
    if (!strcmp(setting, "width")) given->width = true;
    if (!strcmp(setting, "steps")) given->steps = true;
    if (!strcmp(setting, "guidance-scale")) given->guidance = true;
    if (!strcmp(setting, "max-sequence-length")) given->max_sequence_length = true;
}

int cli_parse_flags(const char *cmd, int argc, char **argv, fy_run_options *o, fy_wan_t2v_params *params,
                    cli_given *given, const char *const *names, cli_flag_fn take, void *user)
{
    for (int i = 1; i < argc;) {
        bool consumed = false;
        if (fy_run_options_parse_arg(o, argc, argv, &i, &consumed) != FY_OK)
            return cli_usage_error(cmd, "%s", fy_error_message());
        if (consumed) continue;
        const char *arg = argv[i++];
        if (cli_log_flag(arg)) continue;
        char typed[64], spelled[64];
        bool inline_value = false;
        const char *value = flag_value(arg, argc, argv, i, typed, sizeof typed, &inline_value);
        if (arg[0] != '-') return cli_usage_error(cmd, "unexpected argument \"%s\"", arg);
        const char *flag = canonical_flag(typed, spelled, sizeof spelled);
        bool param = is_param(params, flag);
        if (!param && !in_list(flag, names)) return unknown_flag(cmd, arg, flag, params, names);
        if (!value) return cli_usage_error(cmd, "missing value for \"%s\"", arg);
        if (param) {
            if (fy_wan_t2v_params_set(params, flag + 2, value) != FY_OK)
                return cli_usage_error(cmd, "%s", fy_error_message());
            note_given(given, fy_wan_t2v_param_canonical(flag + 2));
        } else {
            int rc = take(user, flag, value);
            if (rc < 0) return unknown_flag(cmd, arg, flag, params, names);
            if (rc > 0) return rc;
        }
        if (!inline_value) i++;
    }
    return 0;
}

int cli_int_value(const char *cmd, const char *flag, const char *text, long min, long max, int *out)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < min || v > max)
        return cli_usage_error(cmd, "%s \"%s\": expected an integer from %ld to %ld", flag, text, min, max);
    *out = (int)v;
    return 0;
}

/* inf and nan are never meant: strtod accepts them, and they would reach
 * the arithmetic as numbers. */
int cli_double_value(const char *cmd, const char *flag, const char *text, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!*text || *end || !isfinite(v)) return cli_usage_error(cmd, "%s \"%s\": expected a finite number", flag, text);
    *out = v;
    return 0;
}
