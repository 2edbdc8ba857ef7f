/* A generated video written to a file with the settings that made it (the
 * MP4's metadata, each PNG's text chunks): the command line and the Python
 * binding write through this one function, so their files are the same. */
#include <stdio.h>
#include <string.h>

#include "ferry/version.h"
#include "ferry/video_out.h"
#include "ferry/wan_t2v.h"

typedef struct video_tags {
    char seed[32], steps[16], guidance[32], guidance_2[32], shift[32];
    const char *pairs[2 * 10 + 1];
    int n;
} video_tags;

static void tag(video_tags *t, const char *key, const char *value)
{
    t->pairs[t->n++] = key;
    t->pairs[t->n++] = value;
    t->pairs[t->n] = NULL;
}

static void make_tags(video_tags *t, const fy_wan_t2v_params *p)
{
    memset(t, 0, sizeof *t);
    snprintf(t->seed, sizeof t->seed, "%llu", (unsigned long long)p->seed);
    snprintf(t->steps, sizeof t->steps, "%d", p->steps);
    snprintf(t->guidance, sizeof t->guidance, "%g", p->guidance_scale);
    tag(t, "prompt", p->prompt ? p->prompt : "");
    tag(t, "negative_prompt", p->negative_prompt ? p->negative_prompt : FY_WAN_DEFAULT_NEGATIVE_PROMPT);
    tag(t, "seed", t->seed);
    tag(t, "num_inference_steps", t->steps);
    tag(t, "guidance_scale", t->guidance);
    if (p->guidance_scale_2 == p->guidance_scale_2) { /* not NaN: given */
        snprintf(t->guidance_2, sizeof t->guidance_2, "%g", p->guidance_scale_2);
        tag(t, "guidance_scale_2", t->guidance_2);
    }
    if (p->flow_shift > 0) {
        snprintf(t->shift, sizeof t->shift, "%g", p->flow_shift);
        tag(t, "flow_shift", t->shift);
    }
    tag(t, "software", "ferry " FERRY_VERSION);
}

fy_status fy_wan_t2v_save_opts(const char *path, const fy_wan_t2v_result *r, const fy_wan_t2v_params *p,
                               int fps, const fy_video_options *opts)
{
    if (!path || !r || !p) return fy_error(FY_ERR_INVALID, "fy_wan_t2v_save: NULL path, result or params");
    video_tags tags;
    make_tags(&tags, p);
    fy_video_options vo = {.crf = -1};
    if (opts) vo = *opts;
    vo.metadata = tags.pairs;
    return fy_video_write_opts(path, r->video, (int)r->frames, (int)r->height, (int)r->width, fps, FY_VIDEO_AUTO, &vo);
}

fy_status fy_wan_t2v_save(const char *path, const fy_wan_t2v_result *r, const fy_wan_t2v_params *p, int fps, int crf)
{
    fy_video_options vo = {.crf = crf};
    return fy_wan_t2v_save_opts(path, r, p, fps, &vo);
}

char *fy_wan_t2v_result_json(const fy_wan_t2v_params *p, const fy_wan_t2v_result *r)
{
    return fy_wan_t2v_report_json(p, r ? &r->report : NULL);
}

const char *fy_version(void)
{
    return FERRY_VERSION;
}
