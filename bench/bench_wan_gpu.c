/* One forward of a full-size Wan2.1 transformer (1.3B or 14B, random bf16
 * weights written on this machine) on the GPU: everything resident, then
 * streamed layer by layer, then under planner budgets; with the measured
 * pinned host-to-device bandwidth, the ratio streamed / resident and the
 * ratio to the floor max(resident compute, streamed bytes / bandwidth).
 *
 *     bench_wan_gpu [--preset wan2.1-1.3b|wan2.1-14b|demo] [--latent FxHxW] [--text-len L]
 *                   [--repeats N] [--budgets SIZE,SIZE,...] [--dir DIR] [--keep] [--emu]
 *
 * Defaults: 1.3B, latent 3x16x16 (small: 384 tokens an item), 512 text
 * tokens, batch 2 (the CFG pair), 3 timed forwards after a warm-up one, no
 * budgets. 480p/81 frames is --latent 21x60x104 (32760 tokens an item).
 * Each plan's time is the best timed forward with the cross-attention K/V
 * cached (a denoising step after the first). The transformer is written to
 * DIR (default a temp folder, removed unless --keep; a folder already
 * holding a model is reused). The text encoder is cut to one small layer:
 * the forward takes random text embeddings.
 *
 * The CUDA kernels run opt-in (FERRY_EXPERIMENTAL_CUDA=1, set here) until
 * scripts/gpu-check has passed on a GPU. The attention kernel is f32 (no
 * tensor cores yet): at 480p attention dominates; read the small size for
 * the streaming overhead. Prints a Markdown table for bench/RESULTS.md.
 * --emu rehearses the whole run on the emulated device (no GPU needed; with
 * --preset demo it takes seconds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/backend.h"
#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/options.h"
#include "ferry/wan_dit.h"
#include "ferry/wan_random.h"

#define MAX_BUDGETS 8

typedef struct bench_args {
    const char *preset, *dir;
    bool keep, emu;
    int64_t frames, height, width, text_len;
    int repeats;
    uint64_t budgets[MAX_BUDGETS];
    int n_budgets;
} bench_args;

/* One plan's outcome. */
typedef struct plan_result {
    char name[48];
    double forward_s;       /* best timed forward */
    uint64_t bytes_per_fwd; /* weights uploaded per timed forward */
    double stall_share;
    uint64_t peak_device;
    double predicted_s;     /* the planner's step prediction (budgets only) */
} plan_result;

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
}

/* ---- arguments ------------------------------------------------------------ */

static int parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    double unit = 1;
    if (strcmp(end, "GiB") == 0) unit = 1073741824.0;
    else if (strcmp(end, "MiB") == 0) unit = 1048576.0;
    else if (*end) return -1;
    if (!(v > 0)) return -1;
    *out = (uint64_t)(v * unit);
    return 0;
}

static int parse_budgets(char *list, bench_args *a)
{
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (a->n_budgets == MAX_BUDGETS || parse_size(tok, &a->budgets[a->n_budgets]) != 0) return -1;
        a->n_budgets++;
    }
    return 0;
}

static int parse_args(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){.preset = "wan2.1-1.3b", .frames = 3, .height = 16, .width = 16, .text_len = 512, .repeats = 3};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long f, h, w;
        if (strcmp(k, "--keep") == 0) a->keep = true;
        else if (strcmp(k, "--emu") == 0) a->emu = true;
        else if (!v) return -1;
        else if (strcmp(k, "--preset") == 0) a->preset = v, i++;
        else if (strcmp(k, "--dir") == 0) a->dir = v, i++;
        else if (strcmp(k, "--text-len") == 0) a->text_len = atoll(v), i++;
        else if (strcmp(k, "--repeats") == 0) a->repeats = atoi(v), i++;
        else if (strcmp(k, "--latent") == 0 && sscanf(v, "%lldx%lldx%lld", &f, &h, &w) == 3)
            a->frames = f, a->height = h, a->width = w, i++;
        else if (strcmp(k, "--budgets") == 0 && parse_budgets(argv[i + 1], a) == 0) i++;
        else return -1;
    }
    return a->text_len > 0 && a->repeats > 0 && a->frames > 0 && a->height > 0 && a->width > 0 ? 0 : -1;
}

/* ---- the model ------------------------------------------------------------ */

static fy_status write_model(const bench_args *a, const char *dir)
{
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/transformer/config.json", dir);
    struct stat st;
    if (stat(probe, &st) == 0) return FY_OK; /* written by an earlier run (--keep) */
    fy_wan_random_params p;
    FY_TRY(fy_wan_random_preset(a->preset, &p));
    p.te_layers = 1; /* the forward takes random text embeddings */
    p.te_vocab = 0;
    double t0 = fy_backend_now();
    printf("writing a random %s model into %s ...\n", a->preset, dir);
    fflush(stdout);
    FY_TRY(fy_wan_random_write(&p, dir));
    printf("written in %.1f s\n", fy_backend_now() - t0);
    return FY_OK;
}

/* ---- one plan --------------------------------------------------------------- */

typedef struct inputs {
    fy_wan_dit_shape shape;
    float *x, *text, *out;
} inputs;

static fy_status timed_forwards(fy_wan_dit *m, fy_engine *e, const inputs *in, int repeats, plan_result *r)
{
    const float t[2] = {999.0f, 417.5f};
    fy_wan_dit_context *kv = NULL;
    FY_TRY(fy_wan_dit_context_create(m, &kv));
    fy_status st = fy_wan_dit_forward(m, &in->shape, in->x, t, in->text, kv, in->out); /* warm-up, K/V */
    uint64_t up0 = st == FY_OK ? fy_engine_stats_get(e)->bytes_uploaded : 0;
    r->forward_s = 1e30;
    for (int i = 0; st == FY_OK && i < repeats; i++) {
        double t0 = fy_backend_now();
        st = fy_wan_dit_forward(m, &in->shape, in->x, t, in->text, kv, in->out);
        double dt = fy_backend_now() - t0;
        if (dt < r->forward_s) r->forward_s = dt;
    }
    fy_wan_dit_context_free(kv);
    if (st != FY_OK) return st;
    FY_TRY(fy_engine_finish(e));
    const fy_engine_stats *s = fy_engine_stats_get(e);
    r->bytes_per_fwd = (s->bytes_uploaded - up0) / (uint64_t)repeats;
    r->stall_share = s->run_time > 0 ? s->stall_time / s->run_time : 0.0;
    r->peak_device = s->peak_device;
    r->predicted_s = s->predicted_step_s;
    return FY_OK;
}

static fy_status run_plan(const fy_component *dit, const fy_run_options *o, const inputs *in, int repeats,
                          plan_result *r)
{
    fy_engine *e = NULL;
    fy_wan_dit *m = NULL;
    fy_status st = fy_engine_create(o, &e);
    if (st == FY_OK) st = fy_wan_dit_load(dit, e, &m);
    if (st == FY_OK)
        st = fy_engine_reserve(e, fy_wan_dit_activation_bytes(m, &in->shape) +
                                      fy_wan_dit_context_bytes(m, in->shape.batch, in->shape.text_len));
    if (st == FY_OK) st = fy_engine_prepare(e);
    if (st == FY_OK) st = timed_forwards(m, e, in, repeats, r);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    return st;
}

/* ---- bandwidth -------------------------------------------------------------- */

/* Pinned host-to-device bandwidth over 512 MiB, best of four copies. */
static fy_status measure_bandwidth(const fy_run_options *o, double *bw)
{
    const size_t bytes = (size_t)512 << 20;
    fy_backend *b = NULL;
    FY_TRY(fy_backend_create(o, &b));
    void *host = NULL, *dev = NULL;
    bool pinned = false;
    fy_status s = b->vt->alloc_pinned(b, bytes, &host, &pinned);
    if (s == FY_OK) s = b->vt->alloc_device(b, bytes, &dev);
    if (s == FY_OK) memset(host, 1, bytes);
    *bw = 0;
    for (int i = 0; i < 4 && s == FY_OK; i++) {
        double t0 = fy_backend_now();
        s = fy_backend_copy_h2d_async(b, dev, host, bytes, FY_STREAM_COPY, "bandwidth");
        if (s == FY_OK) s = fy_backend_synchronize(b);
        double v = (double)bytes / (fy_backend_now() - t0);
        if (v > *bw) *bw = v;
    }
    if (s == FY_OK && !pinned) fprintf(stderr, "warning: the bandwidth buffer could not be pinned\n");
    if (dev) b->vt->free_device(b, dev, bytes);
    if (host) b->vt->free_pinned(b, host, bytes);
    fy_backend_free(b);
    return s;
}

/* ---- the table -------------------------------------------------------------- */

static void print_table(const plan_result *r, int n, double bw)
{
    double resident = r[0].forward_s;
    printf("\n| plan | forward (s) | vs resident | streamed / forward (GiB) | floor (s) | vs floor | stall "
           "| peak device (GiB) | predicted (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) {
        double wire = bw > 0 ? (double)r[i].bytes_per_fwd / bw : 0.0;
        double floor = wire > resident ? wire : resident;
        printf("| %s | %.3f | %.3fx | %.3f | %.3f | %.3fx | %.1f%% | %.3f | ", r[i].name, r[i].forward_s,
               r[i].forward_s / resident, r[i].bytes_per_fwd / 1073741824.0, floor, r[i].forward_s / floor,
               100.0 * r[i].stall_share, r[i].peak_device / 1073741824.0);
        if (r[i].predicted_s > 0) printf("%.3f |\n", r[i].predicted_s);
        else printf("- |\n");
    }
}

static fy_status make_inputs(const fy_wan_dit_config *c, const bench_args *a, inputs *in)
{
    in->shape = (fy_wan_dit_shape){2, a->frames, a->height, a->width, a->text_len, 0, 0};
    size_t nx = (size_t)(2 * c->in_channels * a->frames * a->height * a->width);
    size_t nt = (size_t)(2 * a->text_len * c->text_dim);
    in->x = malloc(nx * sizeof(float));
    in->out = malloc(nx * sizeof(float));
    in->text = malloc(nt * sizeof(float));
    if (!in->x || !in->out || !in->text) return fy_error(FY_ERR_NOMEM, "bench: out of host memory");
    for (size_t i = 0; i < nx; i++) in->x[i] = rnd();
    for (size_t i = 0; i < nt; i++) in->text[i] = 0.1f * rnd();
    return FY_OK;
}

static fy_status run_all(const bench_args *a, const char *dir)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = a->emu ? FY_DEVICE_EMU : FY_DEVICE_CUDA;
    if (!a->emu) o.compute_dtype = FY_BF16;
    double bw = 0;
    FY_TRY(measure_bandwidth(&o, &bw)); /* first: no GPU fails before gigabytes are written */
    FY_TRY(write_model(a, dir));
    fy_model *model = NULL;
    FY_TRY(fy_model_open(dir, &model));
    const fy_component *dit = fy_model_component(model, "transformer");
    /* The config, for the input sizes: a plan-free load on the host. */
    fy_engine *probe_e = NULL;
    fy_wan_dit *probe = NULL;
    inputs in = {0};
    fy_status st = fy_engine_create_host(&o, &probe_e);
    if (st == FY_OK) st = fy_wan_dit_load(dit, probe_e, &probe);
    if (st == FY_OK) st = make_inputs(fy_wan_dit_get_config(probe), a, &in);
    fy_wan_dit_free(probe);
    fy_engine_free(probe_e);
    if (st == FY_OK)
        printf("%s transformer on %s, batch 2, latent %lldx%lldx%lld, text %lld tokens; pinned host-to-device %.2f "
               "GB/s\n", a->preset, a->emu ? "emu" : "cuda:0", (long long)a->frames, (long long)a->height, (long long)a->width,
               (long long)a->text_len, bw / 1e9);
    plan_result r[2 + MAX_BUDGETS] = {0};
    int n = 0;
    if (st == FY_OK) {
        snprintf(r[n].name, sizeof r[n].name, "resident (none)");
        st = run_plan(dit, &o, &in, a->repeats, &r[n++]);
    }
    if (st == FY_OK) {
        fy_run_options lw = o;
        lw.offload = FY_OFFLOAD_LAYERWISE;
        lw.offload_explicit = true;
        snprintf(r[n].name, sizeof r[n].name, "layerwise d=1, 0 resident");
        st = run_plan(dit, &lw, &in, a->repeats, &r[n++]);
    }
    for (int i = 0; st == FY_OK && i < a->n_budgets; i++) {
        fy_run_options pl = o;
        pl.vram_budget = a->budgets[i];
        double gib = a->budgets[i] / 1073741824.0;
        if (gib >= 1.0) snprintf(r[n].name, sizeof r[n].name, "--vram-budget %.1fGiB", gib);
        else snprintf(r[n].name, sizeof r[n].name, "--vram-budget %.0fMiB", gib * 1024.0);
        st = run_plan(dit, &pl, &in, a->repeats, &r[n++]);
    }
    if (st == FY_OK) print_table(r, n, bw);
    free(in.x);
    free(in.text);
    free(in.out);
    fy_model_free(model);
    return st;
}

int main(int argc, char **argv)
{
    bench_args a;
    if (parse_args(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: bench_wan_gpu [--preset wan2.1-1.3b|wan2.1-14b|demo] [--latent FxHxW] [--text-len L]\n"
                        "                     [--repeats N] [--budgets SIZE,SIZE,...] [--dir DIR] [--keep] [--emu]\n");
        return 2;
    }
    setenv("FERRY_EXPERIMENTAL_CUDA", "1", 0);
    char tmp[] = "/tmp/ferry-bench-gpu-XXXXXX";
    const char *dir = a.dir;
    if (!dir && !(dir = mkdtemp(tmp))) {
        perror("bench_wan_gpu: mkdtemp");
        return 1;
    }
    fy_status st = run_all(&a, dir);
    if (st != FY_OK) fprintf(stderr, "bench_wan_gpu: %s\n", fy_error_message());
    if (!a.keep) fy_wan_random_remove(dir);
    return st == FY_OK ? 0 : 1;
}
