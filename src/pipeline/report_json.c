/* A run's report as JSON: what the closing report prints, for scripts
 * (--report-json) and for bindings (the Python report dict). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/wan_t2v.h"

static void add_settings(cJSON *root, const fy_wan_t2v_params *p)
{
    cJSON *s = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddStringToObject(s, "prompt", p->prompt ? p->prompt : "");
    if (p->negative_prompt) cJSON_AddStringToObject(s, "negative_prompt", p->negative_prompt);
    else cJSON_AddNullToObject(s, "negative_prompt");
    cJSON_AddNumberToObject(s, "height", p->height);
    cJSON_AddNumberToObject(s, "width", p->width);
    cJSON_AddNumberToObject(s, "num_frames", p->num_frames);
    cJSON_AddNumberToObject(s, "num_inference_steps", p->steps);
    cJSON_AddNumberToObject(s, "guidance_scale", p->guidance_scale);
    cJSON_AddNumberToObject(s, "flow_shift", p->flow_shift);
    /* A double holds seeds below 2^53 exactly; the string always. */
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    cJSON_AddNumberToObject(s, "seed", (double)p->seed);
    cJSON_AddStringToObject(s, "seed_text", seed);
}

static void add_engine(cJSON *o, const fy_engine_stats *e)
{
    cJSON_AddNumberToObject(o, "peak_device_bytes", (double)e->peak_device);
    cJSON_AddNumberToObject(o, "device_budget_bytes", (double)e->device_budget);
    cJSON_AddNumberToObject(o, "pinned_bytes", (double)e->pinned_bytes);
    cJSON_AddNumberToObject(o, "bytes_uploaded", (double)e->bytes_uploaded);
    cJSON_AddNumberToObject(o, "uploads", (double)e->uploads);
    cJSON_AddNumberToObject(o, "stall_s", e->stall_time);
    cJSON_AddNumberToObject(o, "run_s", e->run_time);
    cJSON_AddNumberToObject(o, "disk_bytes_read", (double)e->disk_bytes_read);
    cJSON_AddNumberToObject(o, "disk_stall_s", e->disk_stall_time);
    cJSON_AddNumberToObject(o, "measured_step_s", e->measured_step_s);
    cJSON_AddNumberToObject(o, "predicted_step_s", e->predicted_step_s);
    cJSON_AddNumberToObject(o, "predicted_initial_step_s", e->predicted_initial_step_s);
    cJSON_AddNumberToObject(o, "first_step_s", e->first_step_s);
}

static void add_report(cJSON *root, const fy_wan_t2v_report *r)
{
    cJSON *v = cJSON_AddObjectToObject(root, "video");
    cJSON_AddNumberToObject(v, "frames", (double)r->frames);
    cJSON_AddNumberToObject(v, "height", (double)r->height);
    cJSON_AddNumberToObject(v, "width", (double)r->width);
    cJSON *t = cJSON_AddObjectToObject(root, "time_s");
    cJSON_AddNumberToObject(t, "load", r->load_s);
    cJSON_AddNumberToObject(t, "text_encoder", r->text_encoder_s);
    cJSON_AddNumberToObject(t, "denoising", r->denoise_s);
    cJSON_AddNumberToObject(t, "step_mean", r->step_s_mean);
    cJSON_AddNumberToObject(t, "vae", r->vae_s);
    cJSON_AddNumberToObject(t, "total", r->total_s);
    cJSON_AddNumberToObject(t, "first_step", r->first_step_s);
    cJSON_AddNumberToObject(root, "peak_host_bytes", (double)r->peak_host_bytes);
    cJSON_AddNumberToObject(root, "weight_bytes", (double)r->weight_bytes);
    add_engine(cJSON_AddObjectToObject(root, "device"), &r->engine);
    cJSON *engines = cJSON_AddArrayToObject(root, "engines");
    for (int i = 0; i < r->n_engines; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", r->engines[i].name);
        cJSON_AddStringToObject(e, "components", r->engines[i].components);
        add_engine(e, &r->engines[i].stats);
        cJSON_AddItemToArray(engines, e);
    }
}

char *fy_wan_t2v_report_json(const fy_wan_t2v_params *p, const fy_wan_t2v_report *r)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        fy_error(FY_ERR_NOMEM, "out of memory for the report");
        return NULL;
    }
    if (p) add_settings(root, p);
    if (r) add_report(root, r);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) fy_error(FY_ERR_NOMEM, "out of memory for the report");
    return text;
}

void fy_wan_t2v_string_free(char *text)
{
    cJSON_free(text);
}
