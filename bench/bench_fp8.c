/* fp8 storage on the golden tiny Wan model: the whole pipeline (text
 * encoder, denoising, VAE decode) with the fixture's request and initial
 * latents, once as stored (f32) and once per --storage-dtype x --fp8-scale;
 * prints the PSNR of each decoded video against the as-stored one, and the
 * bytes uploaded. --gguf FILE (repeatable) adds a run with the transformer's
 * weights from a GGUF file (tests/support/gguf_write.py writes them).
 *
 *     bench_fp8 [FIXTURES_DIR] [--threads N] [--gguf FILE]...
 *
 * FIXTURES_DIR defaults to the build's (tests/fixtures). For the
 * full-size model see bench_wan_dit --fp8. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/options.h"
#include "ferry/quant.h"
#include "ferry/safetensors.h"
#include "ferry/wan_t2v.h"

#ifndef FERRY_FIXTURES_DIR
#define FERRY_FIXTURES_DIR "tests/fixtures"
#endif

static double number(const cJSON *info, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *string(const cJSON *info, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double psnr(const float *a, const float *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++) se += (double)(a[i] - b[i]) * (a[i] - b[i]);
    double mse = se / (double)n;
    return mse > 0 ? 10.0 * log10(1.0 / mse) : INFINITY;
}

int main(int argc, char **argv)
{
    const char *root = FERRY_FIXTURES_DIR;
    int threads = 2, n_gguf = 0;
    const char *gguf[16];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--gguf") == 0 && i + 1 < argc && n_gguf < 16) gguf[n_gguf++] = argv[++i];
        else root = argv[i];
    }
    char model[1024], fixture[1024];
    snprintf(model, sizeof model, "%s/wan-tiny/model", root);
    snprintf(fixture, sizeof fixture, "%s/wan-tiny/fixtures/pipeline.safetensors", root);
    fy_st_file *f = NULL;
    fy_tensor latents;
    const char *text = NULL;
    cJSON *info = NULL;
    if (fy_st_open(fixture, &f) != FY_OK || fy_st_view(f, "latents.0", &latents) != FY_OK ||
        !(text = fy_st_metadata(f, "info")) || !(info = cJSON_Parse(text))) {
        fprintf(stderr, "bench_fp8: %s: %s\n", fixture, fy_error_message());
        return 1;
    }
    fy_wan_t2v_params p;
    fy_wan_t2v_params_init(&p);
    p.prompt = string(info, "prompt");
    p.negative_prompt = string(info, "negative_prompt");
    p.height = (int)number(info, "height");
    p.width = (int)number(info, "width");
    p.num_frames = (int)number(info, "num_frames");
    p.steps = (int)number(info, "num_inference_steps");
    p.guidance_scale = number(info, "guidance_scale");
    p.max_sequence_length = (int)number(info, "max_sequence_length");
    p.initial_latents = latents.data;

    static const fy_dtype types[3] = {FY_DTYPE_COUNT, FY_F8_E4M3, FY_F8_E5M2};
    static const fy_fp8_scale modes[3] = {FY_FP8_SCALE_NONE, FY_FP8_SCALE_TENSOR, FY_FP8_SCALE_ROW};
    fy_wan_t2v_result base = {0};
    int rc = 0;
    printf("golden tiny Wan: %dx%d, %d frames, %d steps, guidance %g, %d threads\n", p.width, p.height, p.num_frames,
           p.steps, p.guidance_scale, threads);
    printf("%-10s %-7s %14s %12s\n", "storage", "scale", "bytes uploaded", "video PSNR");
    for (int t = 0; t < 3 && rc == 0; t++) {
        for (int m = 0; m < 3 && rc == 0; m++) {
            if (t == 0 && m > 0) break;
            fy_run_options o;
            fy_run_options_init(&o);
            o.threads = threads;
            o.device = FY_DEVICE_EMU; /* so the bytes moved are counted */
            o.offload = FY_OFFLOAD_LAYERWISE;
            o.storage_dtype = types[t];
            o.fp8_scale = modes[m];
            fy_wan_t2v_result r = {0};
            if (fy_wan_t2v_run(model, &o, &p, NULL, &r) != FY_OK) {
                fprintf(stderr, "bench_fp8: %s\n", fy_error_message());
                rc = 1;
                break;
            }
            size_t n = (size_t)(r.frames * r.height * r.width * 3);
            if (t == 0) {
                base = r;
                printf("%-10s %-7s %14llu %12s\n", "as stored", "-", (unsigned long long)r.report.engine.bytes_uploaded,
                       "reference");
                continue;
            }
            printf("%-10s %-7s %14llu %9.2f dB\n", fy_dtype_name(types[t]), fy_fp8_scale_name(modes[m]),
                   (unsigned long long)r.report.engine.bytes_uploaded, psnr(r.video, base.video, n));
            fy_wan_t2v_result_free(&r);
        }
    }
    for (int g = 0; g < n_gguf && rc == 0; g++) {
        fy_run_options o;
        fy_run_options_init(&o);
        o.threads = threads;
        o.device = FY_DEVICE_EMU;
        o.offload = FY_OFFLOAD_LAYERWISE;
        o.storage_dtype = FY_DTYPE_COUNT;
        o.transformer_file = gguf[g];
        fy_wan_t2v_result r = {0};
        if (fy_wan_t2v_run(model, &o, &p, NULL, &r) != FY_OK) {
            fprintf(stderr, "bench_fp8: %s\n", fy_error_message());
            rc = 1;
            break;
        }
        size_t n = (size_t)(r.frames * r.height * r.width * 3);
        printf("%-18s %14llu %9.2f dB\n", gguf[g], (unsigned long long)r.report.engine.bytes_uploaded,
               psnr(r.video, base.video, n));
        fy_wan_t2v_result_free(&r);
    }
    fy_wan_t2v_result_free(&base);
    cJSON_Delete(info);
    fy_st_close(f);
    return rc;
}
