/* `ferry demo`: the whole pipeline on a small random-weight Wan model made
 * on the spot, on an emulated GPU with a budget smaller than the model, so a
 * new user sees weights stream before downloading 30 GB of real ones.
 *
 * The run is `ferry generate`'s (cli_generate_run); this file makes the
 * model, sizes the budget from the plan's bound, says what is about to
 * happen and removes the model again (also after an error or Ctrl-C). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/engine.h"
#include "ferry/log.h"
#include "ferry/model.h"
#include "ferry/options.h"
#include "ferry/video_out.h"
#include "ferry/wan_random.h"
#include "ferry/wan_t2v.h"

static const char usage[] =
    "usage: ferry demo [--model wan2.1|wan2.2] [--output demo.mp4] [--prompt \"...\"] [--model-dir DIR] [options]\n"
    "\n"
    "Writes a small Wan2.1 text-to-video model with random weights (no download),\n"
    "then generates a short video with it as `ferry generate` would, on an emulated\n"
    "GPU (--device emu) with layerwise offload under a budget just above what the\n"
    "plan needs, far below the model's size, and prints the memory report. The\n"
    "video is noise-like (the weights are random): the point is the machinery.\n"
    "\n"
    "  --model wan2.1|wan2.2      the model's layout (default wan2.1); wan2.2: Wan2.2 T2V-A14B's\n"
    "                             two experts (transformer, transformer_2, boundary_ratio 0.875):\n"
    "                             the ring switches to the low-noise expert mid-run\n"
    "  -o, --output PATH          the video (default demo.mp4; .png and folders as generate)\n"
    "  --prompt TEXT              default \"A red fox runs through fresh snow\"\n"
    "  --model-dir DIR            write the random model to DIR (empty or new) and keep it;\n"
    "                             default: a temporary folder, removed at the end\n"
    "  --keep-model DIR           same as --model-dir\n"
    "  --height N --width N       default 64 x 96\n"
    "  --num-frames N             default 13\n"
    "  --steps N                  default 8\n"
    "  --seed N                   noise and weights seed (default 0)\n"
    "\n"
    "Memory options as for generate; the demo's defaults are --device emu\n"
    "--offload layerwise and --max-memory set to the plan's bound rounded up to\n"
    "256 KiB, with copies at 25 GB/s (--emu-bandwidth). Try --offload group\n"
    "--num-blocks-per-group 2, --prefetch-depth 2, --emu-bandwidth 1GB/s or\n"
    "--max-memory 0=64MiB.\n"
    "\n";

void cli_demo_help(FILE *out)
{
    fputs(usage, out);
    fputs(fy_run_options_help(), out);
}

/* The budget's rounding: tight, but a round number to read. */
#define BUDGET_QUANTUM ((uint64_t)256 << 10)

typedef struct demo_args {
    const char *preset;    /* the random model's layout */
    const char *output;
    const char *model_dir; /* kept when given */
    fy_wan_t2v_params params;
    fy_run_options options;
} demo_args;

static const char *const own_flags[] = {"--output", "--model", "--model-dir", "--keep-model", NULL};

/* One demo flag with its value; -1 when arg is not one. */
static int take_flag(void *user, const char *arg, const char *value)
{
    demo_args *a = user;
    if (strcmp(arg, "--output") == 0) return a->output = value, 0;
    if (strcmp(arg, "--model") == 0) {
        if (strcmp(value, "wan2.1") == 0) return a->preset = "demo", 0;
        if (strcmp(value, "wan2.2") == 0 || strcmp(value, "wan2.2-a14b") == 0) return a->preset = "wan2.2-demo", 0;
        return cli_usage_error("demo", "--model %s: use wan2.1 or wan2.2", value);
    }
    if (strcmp(arg, "--model-dir") == 0 || strcmp(arg, "--keep-model") == 0) return a->model_dir = value, 0;
    return -1;
}

static int parse_args(demo_args *a, int argc, char **argv)
{
    int rc = cli_parse_flags("demo", argc, argv, &a->options, &a->params, NULL, own_flags, take_flag, a);
    if (rc) return rc;
    if (fy_run_options_validate(&a->options) != FY_OK) return cli_usage_error("demo", "%s", fy_error_message());
    fy_run_options_default_storage(&a->options);
    /* A PCIe 4.0 x16 link unless told otherwise: the rehearsal of a real GPU's copies. */
    if (a->options.device == FY_DEVICE_EMU && a->options.emu_bandwidth == 0) a->options.emu_bandwidth = 25e9;
    return 0;
}

static void defaults(demo_args *a)
{
    memset(a, 0, sizeof *a);
    a->preset = "demo";
    a->output = "demo.mp4";
    fy_wan_t2v_params_init(&a->params);
    a->params.prompt = "A red fox runs through fresh snow";
    a->params.height = 64;
    a->params.width = 96;
    a->params.num_frames = 13;
    a->params.steps = 8;
    /* The demo's prompts are short; 512 tokens would make the text's
     * activations (and the cross-attention cache) outweigh its small model. */
    a->params.max_sequence_length = 64;
    fy_run_options_init(&a->options);
    a->options.device = FY_DEVICE_EMU;
    a->options.offload = FY_OFFLOAD_LAYERWISE;
}

/* ---- the model --------------------------------------------------------------- */

static char *temp_model_dir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + 32;
    char *dir = malloc(n);
    if (!dir) return NULL;
    snprintf(dir, n, "%s/ferry-demo-XXXXXX", base);
    if (!mkdtemp(dir)) {
        fy_error(FY_ERR_IO, "%s: cannot make a temporary folder for the demo model (set TMPDIR, or --model-dir DIR)",
                 base);
        free(dir);
        return NULL;
    }
    return dir;
}

typedef struct model_facts {
    uint64_t bytes;            /* every component's weights */
    uint64_t dit_block_bytes;
    int dit_blocks;
    bool two_experts;          /* a transformer_2 */
} model_facts;

static fy_status read_facts(const char *dir, model_facts *f)
{
    memset(f, 0, sizeof *f);
    fy_model *m = NULL;
    FY_TRY(fy_model_open(dir, &m));
    fy_status s = FY_OK;
    for (size_t i = 0; s == FY_OK && i < fy_model_component_count(m); i++) {
        const fy_component *c = fy_model_component_at(m, i);
        if (!c->weights) continue;
        fy_weight_stats ws;
        s = fy_component_stats(c, &ws);
        if (s != FY_OK) break;
        f->bytes += ws.bytes;
        if (strcmp(c->name, "transformer_2") == 0) f->two_experts = true;
        if (strcmp(c->name, "transformer") == 0) {
            f->dit_blocks = ws.blocks.count;
            f->dit_block_bytes = ws.blocks.bytes_each_max;
        }
    }
    fy_model_free(m);
    return s;
}

/* ---- the budget ---------------------------------------------------------------- */

static bool budget_given(const fy_run_options *o)
{
    return o->max_memory[o->device_index] != 0 || o->vram_budget != 0 || o->vram_budget_auto;
}

/* The plan as the run will make it. Without a budget of the user's, the
 * budget becomes the plan's bound, rounded up; with one, an impossible one
 * fails here, in one line, before anything is printed. */
static fy_status choose_budget(const char *dir, demo_args *a, fy_plan *plan)
{
    FY_TRY(fy_wan_t2v_device_plan(dir, &a->options, &a->params, plan));
    if (a->options.device == FY_DEVICE_CPU || budget_given(&a->options)) return FY_OK;
    uint64_t bound = plan->device_bound;
    a->options.max_memory[a->options.device_index] = (bound + BUDGET_QUANTUM - 1) / BUDGET_QUANTUM * BUDGET_QUANTUM;
    return FY_OK;
}

static void say_plan(const fy_plan *p)
{
    const char *policy = fy_offload_policy_name(p->policy);
    char resident[64] = "";
    if (p->resident_blocks > 0) snprintf(resident, sizeof resident, " (the first %d stay resident)", p->resident_blocks);
    if (p->policy == FY_OFFLOAD_LAYERWISE)
        fprintf(stderr,
                "  Plan layerwise, prefetch depth %d: each component's blocks stream through a ring of %d slots%s,\n"
                "  each block uploaded on the copy stream while the one before it computes.\n",
                p->depth, p->slots, resident);
    else if (p->policy == FY_OFFLOAD_NONE)
        fprintf(stderr, "  Plan none: every weight resident on the device, nothing streams.\n");
    else
        fprintf(stderr, "  Plan %s: blocks move %d at a time through %d slot%s%s.\n", policy, p->blocks_per_unit,
                p->slots, p->slots == 1 ? "" : "s", resident);
}

static void say_what_happens(const demo_args *a, const char *dir, const model_facts *f, const fy_plan *p)
{
    char model[32], block[32], budget[32], bound[32], rate[48] = "";
    cli_human_bytes(f->bytes, model, sizeof model);
    cli_human_bytes(f->dit_block_bytes, block, sizeof block);
    cli_human_bytes(a->options.max_memory[a->options.device_index], budget, sizeof budget);
    cli_human_bytes(p->device_bound, bound, sizeof bound);
    if (f->two_experts)
        fprintf(stderr,
                "ferry demo: a Wan2.2 T2V-A14B-style model with random weights, %s: two experts of %d transformer\n"
                "  blocks of %s (transformer for the high-noise steps, transformer_2 from the step whose timestep\n"
                "  falls below 875), written to %s%s. Random weights make a noise-like video:\n"
                "  the point is the machinery.\n",
                model, f->dit_blocks, block, dir, a->model_dir ? "" : " (removed at the end)");
    else
        fprintf(stderr,
                "ferry demo: a Wan2.1 text-to-video model with random weights, %s (%d transformer blocks of %s),\n"
                "  written to %s%s. Random weights make a noise-like video:\n"
                "  the point is the machinery.\n",
                model, f->dit_blocks, block, dir, a->model_dir ? "" : " (removed at the end)");
    if (a->options.device == FY_DEVICE_CPU) {
        fprintf(stderr, "  On --device cpu the weights are read in place: nothing streams.\n");
        return;
    }
    if (a->options.device == FY_DEVICE_EMU && a->options.emu_bandwidth > 0)
        snprintf(rate, sizeof rate, ", copies at %.0f GB/s", a->options.emu_bandwidth / 1e9);
    if (a->options.max_memory[a->options.device_index])
        fprintf(stderr, "  %s (--device %s%s): budget %s for the %s model (the plan needs %s).\n",
                a->options.device == FY_DEVICE_EMU ? "Emulated GPU" : "GPU", fy_device_kind_name(a->options.device),
                rate, budget, model, bound);
    say_plan(p);
    if (f->two_experts && p->policy == FY_OFFLOAD_LAYERWISE)
        fprintf(stderr, "  One ring serves both experts: during transformer's last step it prefetches transformer_2's\n"
                        "  first blocks, and at the switch transformer's device memory is given back.\n");
}

/* ---- the run -------------------------------------------------------------------- */

static int make_model(demo_args *a, const char *dir)
{
    fy_wan_random_params rp;
    if (fy_wan_random_preset(a->preset, &rp) != FY_OK) return cli_fail();
    rp.seed = a->params.seed;
    if (fy_wan_random_write(&rp, dir) != FY_OK) return cli_fail();
    return 0;
}

static int demo(demo_args *a, const char *dir)
{
    int rc = make_model(a, dir);
    if (rc) return rc;
    model_facts facts;
    fy_plan plan;
    if (read_facts(dir, &facts) != FY_OK || choose_budget(dir, a, &plan) != FY_OK) return cli_fail();
    if (cli_stop_requested()) {
        fy_error(FY_ERR_INTERRUPTED, "stopped by the user while the random model was written");
        return cli_stopped();
    }
    if (fy_log_get_level() >= FY_LOG_INFO) say_what_happens(a, dir, &facts, &plan);
    cli_generate_spec spec = {.model_dir = dir, .output = a->output, .fps = 16, .crf = -1};
    return cli_generate_run(&spec, &a->params, &a->options);
}

int cli_demo_main(int argc, char **argv)
{
    demo_args a;
    defaults(&a);
    int rc = parse_args(&a, argc, argv);
    if (rc) return rc;
    /* Before the model is written: a bad --output or --trace wastes nothing. */
    rc = cli_check_outputs(a.output, a.params.num_frames, &a.options);
    if (rc) return rc;

    /* Ctrl-C while the model is written: finish the (short) write, then
     * clean up; the run has its own handler, which stops between steps. */
    cli_stop_install();
    char *temp = a.model_dir ? NULL : temp_model_dir();
    const char *dir = a.model_dir ? a.model_dir : temp;
    rc = dir ? demo(&a, dir) : cli_fail();
    if (temp) fy_wan_random_remove(temp);
    else if (rc == 0) fy_info("the random model is kept in %s", dir);
    free(temp);
    cli_stop_restore();
    return rc;
}
