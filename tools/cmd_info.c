/* `ferry info MODEL_DIR`: what is in a model folder, per component. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry/config.h"
#include "ferry/model.h"

static const char usage[] =
    "usage: ferry info MODEL_DIR\n"
    "\n"
    "Print the pipeline class of a diffusers model folder and, per component, its class,\n"
    "parameter count, dtypes, weight bytes and the dominant repeated block group\n"
    "(the unit the offload engine streams).\n";

void cli_info_help(FILE *out)
{
    fputs(usage, out);
}

#define COLUMNS 6
#define CELL 256

typedef struct row {
    char cell[COLUMNS][CELL];
} row;

static const char *const headers[COLUMNS] = {"component", "class", "params", "dtypes", "bytes", "repeated blocks"};

static void format_dtypes(const fy_weight_stats *s, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int t = 0; t < FY_DTYPE_COUNT; t++) {
        if (!s->params_by_dtype[t]) continue;
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", used ? "," : "", fy_dtype_name((fy_dtype)t));
    }
    if (!buf[0]) snprintf(buf, size, "-");
}

static void format_blocks(const fy_block_stats *b, char *buf, size_t size)
{
    char lo[32], hi[32];
    if (b->count == 0) {
        snprintf(buf, size, "-");
        return;
    }
    cli_human_bytes(b->bytes_each_min, lo, sizeof lo);
    cli_human_bytes(b->bytes_each_max, hi, sizeof hi);
    int n = b->bytes_each_min == b->bytes_each_max
                ? snprintf(buf, size, "%s.N x %d, %s each", b->prefix, b->count, hi)
                : snprintf(buf, size, "%s.N x %d, %s to %s each", b->prefix, b->count, lo, hi);
    if (n < 0 || (size_t)n >= size) snprintf(buf, size, "%d blocks", b->count);
}

static void format_params(uint64_t params, char *buf, size_t size)
{
    char human[32];
    snprintf(buf, size, "%llu (%s)", (unsigned long long)params, cli_human_count(params, human, sizeof human));
}

static fy_status component_row(const fy_component *c, row *r, fy_weight_stats *stats)
{
    snprintf(r->cell[0], CELL, "%s", c->name);
    snprintf(r->cell[1], CELL, "%s", c->class_name);
    if (!c->weights) {
        memset(stats, 0, sizeof *stats);
        for (int k = 2; k < COLUMNS; k++) snprintf(r->cell[k], CELL, "-");
        return FY_OK;
    }
    FY_TRY(fy_component_stats(c, stats));
    format_params(stats->params, r->cell[2], CELL);
    format_dtypes(stats, r->cell[3], CELL);
    cli_human_bytes(stats->bytes, r->cell[4], CELL);
    format_blocks(&stats->blocks, r->cell[5], CELL);
    return FY_OK;
}

static void print_cells(const char *const *cells, const size_t *width)
{
    int last = COLUMNS - 1;
    while (last > 0 && !cells[last][0]) last--; /* no trailing padding */
    for (int k = 0; k < last; k++) printf("%-*s  ", (int)width[k], cells[k]);
    printf("%s\n", cells[last]);
}

static void print_table(const row *rows, size_t n)
{
    size_t width[COLUMNS] = {0};
    for (int k = 0; k < COLUMNS; k++) width[k] = strlen(headers[k]);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < COLUMNS; k++) {
            size_t w = strlen(rows[i].cell[k]);
            if (w > width[k]) width[k] = w;
        }
    }
    print_cells(headers, width);
    for (size_t i = 0; i < n; i++) {
        const char *cells[COLUMNS];
        for (int k = 0; k < COLUMNS; k++) cells[k] = rows[i].cell[k];
        print_cells(cells, width);
    }
}

/* Wan2.2 A14B: which expert runs which steps (model_index.json's boundary_ratio). */
static void print_experts(const fy_model *m)
{
    double ratio = 0;
    const fy_config *index = fy_model_index(m);
    if (!fy_config_has(index, "boundary_ratio") || fy_config_double(index, "boundary_ratio", &ratio) != FY_OK) {
        fy_error_clear();
        return;
    }
    const fy_component *sched = fy_model_component(m, "scheduler");
    int64_t train = 1000;
    if (!sched || !sched->config || fy_config_int_or(sched->config, "num_train_timesteps", 1000, &train) != FY_OK)
        train = 1000;
    fy_error_clear();
    printf("\nexperts: boundary_ratio %g: transformer (high noise) runs the steps whose timestep >= %g, "
           "transformer_2 (low noise) the rest\n", ratio, ratio * (double)train);
}

/* Wan: what --image does with this folder (text to video, image to video, or both). */
static void print_modes(const fy_model *m)
{
    const char *cls = fy_model_class(m);
    bool i2v = cls && strcmp(cls, "WanImageToVideoPipeline") == 0, expand = false;
    if (!cls || (!i2v && strcmp(cls, "WanPipeline") != 0)) return;
    if (fy_config_bool_or(fy_model_index(m), "expand_timesteps", false, &expand) != FY_OK) expand = false;
    const fy_component *dit = fy_model_component(m, "transformer");
    int64_t image_dim = 0;
    if (!dit || !dit->config || fy_config_int_or(dit->config, "image_dim", 0, &image_dim) != FY_OK) image_dim = 0;
    fy_error_clear();
    if (expand)
        printf("\nmodes: %simage to video with --image (Wan2.2 TI2V: the image, VAE-encoded, is the first latent "
               "frame, its tokens at timestep 0)\n", i2v ? "" : "text to video; ");
    else if (i2v)
        printf("\nmodes: image to video, --image required (the image, VAE-encoded, in mask and condition "
               "channels%s)\n", image_dim ? ", and its CLIP image tokens" : "");
    else
        printf("\nmodes: text to video\n");
}

static fy_status print_info(const fy_model *m)
{
    size_t n = fy_model_component_count(m);
    row *rows = calloc(n + 1, sizeof *rows);
    if (!rows) return fy_error(FY_ERR_NOMEM, "out of memory");
    uint64_t params = 0, bytes = 0;
    fy_weight_stats total = {0};
    fy_status s = FY_OK;
    for (size_t i = 0; i < n && s == FY_OK; i++) {
        fy_weight_stats stats;
        s = component_row(fy_model_component_at(m, i), &rows[i], &stats);
        params += stats.params;
        bytes += stats.bytes;
        for (int t = 0; t < FY_DTYPE_COUNT; t++) total.params_by_dtype[t] += stats.params_by_dtype[t];
    }
    if (s == FY_OK) {
        row *t = &rows[n];
        snprintf(t->cell[0], CELL, "total");
        format_params(params, t->cell[2], CELL);
        format_dtypes(&total, t->cell[3], CELL);
        cli_human_bytes(bytes, t->cell[4], CELL);
        printf("%s  %s\n\n", fy_model_class(m), fy_model_dir(m));
        print_table(rows, n + 1);
        print_experts(m);
        print_modes(m);
    }
    free(rows);
    return s;
}

int cli_info_main(int argc, char **argv)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_log_flag(argv[i])) continue;
        if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("info", "unknown option \"%s\"", argv[i]);
        if (dir) return cli_usage_error("info", "one MODEL_DIR expected, got \"%s\" too", argv[i]);
        dir = argv[i];
    }
    if (!dir) return cli_usage_error("info", "expected MODEL_DIR");
    fy_model *m = NULL;
    if (fy_model_open(dir, &m) != FY_OK) return cli_fail();
    fy_status s = print_info(m);
    fy_model_free(m);
    return s == FY_OK ? 0 : cli_fail();
}
