/* A video's settings by name, for the command line and for bindings: one
 * table of names, with the aliases users bring from diffusers, FastVideo
 * and stable-diffusion.cpp, and one set of range checks and messages. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ferry/wan_t2v.h"

/* --guidance-scale's range: beyond it the latents overflow (an all-black video). */
#define GUIDANCE_MAX 1e4

typedef enum param_id {
    P_PROMPT, P_NEGATIVE, P_HEIGHT, P_WIDTH, P_FRAMES, P_STEPS, P_GUIDANCE, P_GUIDANCE_2, P_SHIFT, P_SEED, P_SEQ_LEN,
    P_IMAGE, P_LAST_IMAGE
} param_id;

typedef struct param_name {
    const char *name;   /* as the flag, without dashes */
    param_id id;
} param_name;

/* The canonical name first; then the aliases (diffusers' and FastVideo's
 * keyword names, stable-diffusion.cpp's flags). */
static const param_name names[] = {
    {"prompt", P_PROMPT},
    {"negative-prompt", P_NEGATIVE},
    {"height", P_HEIGHT},
    {"width", P_WIDTH},
    {"num-frames", P_FRAMES},
    {"steps", P_STEPS},
    {"guidance-scale", P_GUIDANCE},
    {"guidance-scale-2", P_GUIDANCE_2},
    {"flow-shift", P_SHIFT},
    {"seed", P_SEED},
    {"max-sequence-length", P_SEQ_LEN},
    {"image", P_IMAGE},
    {"last-image", P_LAST_IMAGE},
    {"num-inference-steps", P_STEPS},
    {"sample-steps", P_STEPS},
    {"cfg-scale", P_GUIDANCE},
    {"video-frames", P_FRAMES},
    {"shift", P_SHIFT},
};

#define NAME_COUNT (sizeof names / sizeof names[0])

const char *fy_wan_t2v_param_name(size_t i)
{
    return i < NAME_COUNT ? names[i].name : NULL;
}

/* "--num_inference_steps" -> "num-inference-steps" in buf. */
static void normalize(const char *name, char *buf, size_t size)
{
    while (*name == '-') name++;
    size_t n = 0;
    for (; name[n] && n + 1 < size; n++) buf[n] = name[n] == '_' ? '-' : name[n];
    buf[n] = '\0';
}

static const param_name *find_param(const char *name)
{
    char key[64];
    normalize(name, key, sizeof key);
    for (size_t i = 0; i < NAME_COUNT; i++)
        if (strcmp(names[i].name, key) == 0) return &names[i];
    return NULL;
}

const char *fy_wan_t2v_param_canonical(const char *name)
{
    const param_name *p = find_param(name);
    if (!p) return NULL;
    for (size_t i = 0; i < NAME_COUNT; i++)
        if (names[i].id == p->id) return names[i].name;
    return NULL;
}

static fy_status set_int(const char *flag, const char *text, long min, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!*text || *end || errno || v < min || v > max)
        return fy_error(FY_ERR_INVALID, "--%s \"%s\": expected an integer from %ld to %ld", flag, text, min, max);
    *out = (int)v;
    return FY_OK;
}

/* inf and nan are never meant: strtod accepts them. */
static fy_status set_double(const char *flag, const char *text, double min, double max, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!*text || *end || !isfinite(v) || v < min || v > max) {
        if (max >= HUGE_VAL) return fy_error(FY_ERR_INVALID, "--%s \"%s\": expected a finite number", flag, text);
        return fy_error(FY_ERR_INVALID, "--%s \"%s\": expected a finite number from %g to %g", flag, text, min, max);
    }
    *out = v;
    return FY_OK;
}

/* A seed nobody chose: from the kernel's generator, the clock if that fails. */
static uint64_t random_seed(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) v = (uint64_t)time(NULL) * 6364136223846793005ull;
    /* Below 2^53, so a JSON reader or a Python float keeps it exactly. */
    return v & ((1ull << 53) - 1);
}

static fy_status set_seed(const char *text, uint64_t *out)
{
    if (strcmp(text, "-1") == 0) {
        *out = random_seed();
        return FY_OK;
    }
    /* strtoull takes leading blanks and signs ("-2" wraps): digits only. */
    if (!isdigit((unsigned char)text[0]))
        return fy_error(FY_ERR_INVALID, "--seed \"%s\": expected a non-negative integer (or -1 for a random seed)",
                        text);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end)
        return fy_error(FY_ERR_INVALID, "--seed \"%s\": expected a non-negative integer (or -1 for a random seed)",
                        text);
    /* strtoull clamps an overflow to the largest value: a different seed in silence. */
    if (errno == ERANGE)
        return fy_error(FY_ERR_INVALID, "--seed \"%s\": above the largest seed, 18446744073709551615 (2^64-1)", text);
    *out = v;
    return FY_OK;
}

fy_status fy_wan_t2v_params_set(fy_wan_t2v_params *p, const char *name, const char *value)
{
    if (!p || !name) return fy_error(FY_ERR_INVALID, "fy_wan_t2v_params_set: NULL params or name");
    const param_name *n = find_param(name);
    if (!n) return fy_error(FY_ERR_INVALID, "unknown video setting \"%s\"", name);
    const char *flag = fy_wan_t2v_param_canonical(name);
    if (!value && n->id != P_NEGATIVE) return fy_error(FY_ERR_INVALID, "--%s needs a value", flag);
    switch (n->id) {
    case P_PROMPT: p->prompt = value; return FY_OK;
    case P_NEGATIVE: p->negative_prompt = value; return FY_OK;
    case P_IMAGE: p->image = value; return FY_OK;
    case P_LAST_IMAGE: p->last_image = value; return FY_OK;
    case P_HEIGHT: return set_int(flag, value, 1, 8192, &p->height);
    case P_WIDTH: return set_int(flag, value, 1, 8192, &p->width);
    case P_FRAMES: return set_int(flag, value, 1, 4096, &p->num_frames);
    case P_STEPS: return set_int(flag, value, 1, 10000, &p->steps);
    case P_SEQ_LEN: return set_int(flag, value, 1, 4096, &p->max_sequence_length);
    case P_GUIDANCE: return set_double(flag, value, -GUIDANCE_MAX, GUIDANCE_MAX, &p->guidance_scale);
    case P_GUIDANCE_2: return set_double(flag, value, -GUIDANCE_MAX, GUIDANCE_MAX, &p->guidance_scale_2);
    case P_SHIFT: return set_double(flag, value, -HUGE_VAL, HUGE_VAL, &p->flow_shift);
    case P_SEED: return set_seed(value, &p->seed);
    }
    return fy_error(FY_ERR_INTERNAL, "video setting \"%s\" has no parser", name);
}

fy_wan_t2v_params *fy_wan_t2v_params_new(void)
{
    fy_wan_t2v_params *p = malloc(sizeof *p);
    if (p) fy_wan_t2v_params_init(p);
    else fy_error(FY_ERR_NOMEM, "out of memory for the video settings");
    return p;
}

void fy_wan_t2v_params_free(fy_wan_t2v_params *p)
{
    free(p);
}
