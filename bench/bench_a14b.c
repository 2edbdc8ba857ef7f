/* Wan2.2 A14B's expert switch on the emulated device: the step times before,
 * at and after the switch against the floor, and a full-size folder for
 * `ferry plan`.
 *
 *   bench_a14b switch [--preset wan2.2-demo] [--bandwidth GB/s] [--steps N] [--size HxWxF]
 *       writes the random two-expert model to a temp folder, runs the pipeline
 *       resident (offload none: each step's compute, the floor's first term)
 *       and layerwise under a budget of the plan's bound, and prints one row
 *       per step: expert, layerwise time, resident time, and the floor
 *       max(compute, streamed bytes / bandwidth). Prints a markdown table.
 *   [BENCH_A14B_LAYERS=1] bench_a14b write DIR
 *       a full-size A14B folder for `ferry plan`: one random 14B expert
 *       (the real config, bf16; text encoder cut to one layer) written once,
 *       transformer_2 a link to it (same shapes and bytes: a plan depends on
 *       nothing else) and boundary_ratio 0.875. Writing 40 random blocks
 *       takes long on a small machine: write one and extend the file with
 *       bench/sparse_blocks.py (then set num_layers in its config.json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/backend.h"
#include "ferry/log.h"
#include "ferry/options.h"
#include "ferry/wan_random.h"
#include "ferry/wan_t2v.h"

#define MAX_STEPS 64

typedef struct step_times {
    double s[MAX_STEPS];
    double stall[MAX_STEPS];
    int expert[MAX_STEPS];
    int n;
} step_times;

static void on_step(void *user, int i, int n, double seconds)
{
    step_times *t = user;
    (void)n;
    if (i < MAX_STEPS) t->s[i] = seconds, t->n = i + 1;
}

static void on_ids(void *user, const char *name, const int64_t *data, int64_t n)
{
    step_times *t = user;
    int i;
    char what[32];
    if (n == 1 && sscanf(name, "step%d.%31s", &i, what) == 2 && strcmp(what, "expert") == 0 && i >= 0 &&
        i < MAX_STEPS)
        t->expert[i] = (int)data[0];
}

static int run_once(const char *dir, const fy_run_options *o, const fy_wan_t2v_params *p, step_times *t,
                    fy_wan_t2v_report *report)
{
    fy_wan_t2v_hooks hooks = {0};
    hooks.user = t;
    hooks.step = on_step;
    hooks.ids = on_ids;
    fy_wan_t2v_result r;
    if (fy_wan_t2v_run(dir, o, p, &hooks, &r) != FY_OK) {
        fprintf(stderr, "bench_a14b: %s\n", fy_error_message());
        return 1;
    }
    *report = r.report;
    fy_wan_t2v_result_free(&r);
    return 0;
}

#define REPEATS 3

/* Each step's fastest of REPEATS runs: other load on the machine only adds time. */
static int run(const char *dir, const fy_run_options *o, const fy_wan_t2v_params *p, step_times *t,
               fy_wan_t2v_report *report)
{
    for (int k = 0; k < REPEATS; k++) {
        step_times one = {0};
        fy_wan_t2v_report rep;
        if (run_once(dir, o, p, &one, &rep)) return 1;
        for (int i = 0; i < one.n; i++) {
            if (k == 0 || one.s[i] < t->s[i]) t->s[i] = one.s[i];
            if (k == 0 || rep.step_stall_s[i] < t->stall[i]) t->stall[i] = rep.step_stall_s[i];
            t->expert[i] = one.expert[i];
        }
        t->n = one.n;
        if (k == 0 || rep.engine.switch_stall_time > report->engine.switch_stall_time) *report = rep;
    }
    return 0;
}

static int bench_switch(int argc, char **argv)
{
    const char *preset = "wan2.2-demo";
    double gbps = 25.0;
    fy_wan_t2v_params p;
    fy_wan_t2v_params_init(&p);
    p.prompt = "A red fox runs through fresh snow";
    p.height = 64, p.width = 96, p.num_frames = 13, p.steps = 10, p.max_sequence_length = 64;
    p.guidance_scale = 4.0, p.guidance_scale_2 = 3.0;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--preset") == 0) preset = argv[i + 1];
        else if (strcmp(argv[i], "--bandwidth") == 0) gbps = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--steps") == 0) p.steps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0 && sscanf(argv[i + 1], "%dx%dx%d", &p.height, &p.width, &p.num_frames) == 3) {
        } else return fprintf(stderr, "bench_a14b switch: bad argument %s\n", argv[i]), 2;
    }
    if (p.steps < 2 || p.steps > MAX_STEPS) return fprintf(stderr, "bench_a14b: --steps 2 to %d\n", MAX_STEPS), 2;
    char dir[] = "/tmp/bench-a14b-XXXXXX";
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    fy_wan_random_params rp;
    int rc = fy_wan_random_preset(preset, &rp) == FY_OK && fy_wan_random_write(&rp, dir) == FY_OK ? 0 : 1;
    if (rc) fprintf(stderr, "bench_a14b: %s\n", fy_error_message());

    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    o.emu_bandwidth = gbps * 1e9;
    o.text_encoder_cpu_offload = true; /* the device holds the experts only */
    o.vae_cpu_offload = true;
    /* Uploads from the mapped files (in the page cache, just written): the
     * background pinning of a fresh run would otherwise be timed as well. */
    o.pin_cpu_memory = false;
    step_times resident = {0}, streamed = {0};
    fy_wan_t2v_report rr = {0}, sr = {0};
    o.offload = FY_OFFLOAD_NONE;
    if (!rc) rc = run(dir, &o, &p, &resident, &rr);
    o.offload = FY_OFFLOAD_LAYERWISE;
    fy_plan plan;
    if (!rc && fy_wan_t2v_device_plan(dir, &o, &p, &plan) != FY_OK) rc = 1;
    if (!rc) {
        o.max_memory[0] = plan.device_bound + (1u << 20);
        rc = run(dir, &o, &p, &streamed, &sr);
    }
    if (!rc) {
        /* A step streams every block of its expert once (the CFG pair is one batch). */
        double bytes = (double)sr.engine.bytes_uploaded / p.steps;
        double transfer = bytes / o.emu_bandwidth;
        printf("%s, %dx%d, %d frames, %d steps, emu at %.3g GB/s, layerwise depth 1 under %.1f MiB (plan bound "
               "%.1f MiB); each step's time and stall the least of %d runs; switch at step %d, waited at most %.3f ms, %d blocks "
               "prefetched\n\n",
               preset, p.width, p.height, p.num_frames, p.steps, gbps, o.max_memory[0] / 1048576.0,
               plan.device_bound / 1048576.0, REPEATS, sr.switch_step, sr.engine.switch_stall_time * 1e3,
               sr.engine.switch_prefetched);
        printf("| step | expert | layerwise (s) | its stall (ms) | resident = compute (s) | transfer (s) | floor (s) | over floor |\n");
        printf("|---:|---|---:|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < streamed.n; i++) {
            double floor = resident.s[i] > transfer ? resident.s[i] : transfer;
            const char *where = i + 1 == sr.switch_step ? " (last before)" : i == sr.switch_step ? " (switch)" : "";
            printf("| %d%s | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %+.1f%% |\n", i, where,
                   streamed.expert[i] ? "transformer_2" : "transformer", streamed.s[i], streamed.stall[i] * 1e3,
                   resident.s[i], transfer, floor,
                   100.0 * (streamed.s[i] / floor - 1.0));
        }
    }
    fy_wan_random_remove(dir);
    return rc;
}

static int bench_write(const char *dir)
{
    fy_wan_random_params rp;
    if (fy_wan_random_preset("wan2.1-14b", &rp) != FY_OK) return 1;
    rp.te_layers = 1; /* the transformer's numbers do not depend on it */
    rp.te_vocab = 0;
    /* BENCH_A14B_LAYERS: fewer blocks written (scripts may extend the file) */
    if (getenv("BENCH_A14B_LAYERS")) rp.dit_layers = atoi(getenv("BENCH_A14B_LAYERS"));
    double t0 = fy_backend_now();
    if (fy_wan_random_write(&rp, dir) != FY_OK) return fprintf(stderr, "bench_a14b: %s\n", fy_error_message()), 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/transformer_2", dir);
    if (symlink("transformer", path) != 0) return perror(path), 1;
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return perror(path), 1;
    fprintf(f, "{\n  \"_class_name\": \"WanPipeline\",\n  \"boundary_ratio\": 0.875,\n  \"expand_timesteps\": false,\n"
               "  \"scheduler\": [\"diffusers\", \"UniPCMultistepScheduler\"],\n"
               "  \"text_encoder\": [\"transformers\", \"UMT5EncoderModel\"],\n"
               "  \"tokenizer\": [\"transformers\", \"T5Tokenizer\"],\n"
               "  \"transformer\": [\"diffusers\", \"WanTransformer3DModel\"],\n"
               "  \"transformer_2\": [\"diffusers\", \"WanTransformer3DModel\"],\n"
               "  \"vae\": [\"diffusers\", \"AutoencoderKLWan\"]\n}\n");
    fclose(f);
    printf("written %s in %.1f s\n", dir, fy_backend_now() - t0);
    return 0;
}

int main(int argc, char **argv)
{
    fy_log_set_level(FY_LOG_WARN);
    if (argc >= 2 && strcmp(argv[1], "switch") == 0) return bench_switch(argc - 2, argv + 2);
    if (argc == 3 && strcmp(argv[1], "write") == 0) return bench_write(argv[2]);
    fprintf(stderr, "usage: bench_a14b switch [--preset P] [--bandwidth GB/s] [--steps N] [--size HxWxF]\n"
                    "       bench_a14b write DIR\n");
    return 2;
}
