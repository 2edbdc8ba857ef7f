/* The planner (--vram-budget SIZE|auto): picks the plan with the smallest
 * predicted step time among those whose device bound fits the budget.
 *
 * Candidates: none (every block resident), layerwise at depth 1..3 with K
 * leading blocks resident (K = 0..N-1), sequential with K resident.
 *
 * Cost model for one step (a pass over the step component's blocks), with
 * c_i the compute seconds of block i, u_i = bytes_i / bandwidth its upload,
 * and R = the step's time outside blocks (gap) + the resident blocks' compute:
 *   none          R
 *   sequential    R + sum over streamed of (c_i + u_i)          (no overlap;
 *                 chosen only when no layerwise plan fits)
 *   layerwise d   R + sum over streamed of max(c_i, u_i) - hidden
 *                 where hidden = min(R, sum over the first d+1 streamed
 *                 blocks of max(0, u_i - c_i)): the ring's d+1 slots refill
 *                 while the resident part computes, so that much of the copy
 *                 backlog is hidden. Never below the total compute.
 * A ring with a slot for every streamed unit keeps them all loaded after
 * the first step: then only compute counts.
 * The bandwidth is measured once, by a timed upload (on emu it reflects
 * --emu-bandwidth). Before step 1 a block's compute is its declared FLOPs
 * at the requested size (fy_engine_set_group_flops) over the device's
 * rate (flop_rate.c: a timed product on host devices, assumed on a GPU),
 * or, for a model that declares none, a guess from its bytes
 * (PLANNER_FLOP_PER_BYTE); after step 1 the chosen plan is re-predicted
 * with the measured per-block compute spans ("refined"), and again at the
 * end with the later steps' mean spans. The plan itself is not changed
 * mid-run (it would mean reallocating the ring).
 * Components with declared step counts (a mixture of experts: each runs its
 * share of the schedule) are weighed by them: the plan minimises the run's
 * denoising time, sum over components of steps x step time. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "mem/engine_internal.h"

/* Before anything is measured, for a model that declares no FLOPs:
 * weights are used this many FLOPs per byte (a DiT block on a few thousand
 * tokens is far above; a text encoder below). */
#define PLANNER_FLOP_PER_BYTE 64.0
#define PLANNER_MAX_DEPTH 3
/* --vram-budget auto keeps this share of the device's total free on cuda
 * (allocator slack, other processes); emu's budget is exact. */
#define PLANNER_AUTO_MARGIN 0.05
#define PLANNER_PROBE_MIN (4u << 20)
#define PLANNER_PROBE_MAX (64u << 20)

static fy_status device_clock_init(fy_engine *e);
static void b_record(fy_engine *e, fy_event *ev);

static double dmax(double a, double b)
{
    return a > b ? a : b;
}

static double dmin(double a, double b)
{
    return a < b ? a : b;
}

/* One pass over component comp's blocks under plan p. */
static double predict_pass(const fy_engine *e, int comp, const fy_plan *p, double bandwidth, const double *compute,
                           double gap)
{
    double resident = gap, total = gap, streamed = 0, backlog = 0;
    int n_streamed = 0;
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        if (g->kind != FY_GROUP_BLOCK || g->component != comp) continue;
        double c = compute[i];
        total += c;
        if (p->policy == FY_OFFLOAD_NONE || fy_eng_resident_rank(e, g) < p->resident_blocks) {
            resident += c;
            continue;
        }
        double u = bandwidth > 0 ? (double)g->bytes / bandwidth : 0;
        if (p->policy == FY_OFFLOAD_LAYERWISE) {
            streamed += dmax(c, u);
            if (n_streamed <= p->depth) backlog += dmax(0, u - c);
        } else {
            streamed += c + u; /* sequential, group and model: loaded when acquired */
        }
        n_streamed++;
    }
    /* A ring with a slot for every streamed unit keeps them loaded after the first step. */
    int units = (n_streamed + p->blocks_per_unit - 1) / (p->blocks_per_unit > 0 ? p->blocks_per_unit : 1);
    if (p->blocks_per_unit == INT_MAX) units = n_streamed > 0;
    if (units <= p->slots) return total;
    double t = resident + streamed;
    if (p->policy == FY_OFFLOAD_LAYERWISE) t -= dmin(resident, backlog);
    return dmax(t, total);
}

double fy_engine_predict_step(const fy_engine *e, const fy_plan *p, double bandwidth, const double *compute,
                              double gap)
{
    return predict_pass(e, e->planner.step_comp, p, bandwidth, compute, gap);
}

/* The step time a plan is judged by: with declared step counts the mean
 * over the run's steps (sum of steps x pass time, over the steps), else one
 * pass of the step component. */
static double plan_cost(const fy_engine *e, const fy_plan *p, double bandwidth, const double *compute)
{
    double sum = 0;
    int steps = 0;
    for (int c = 0; c < e->n_comps; c++) {
        if (e->comps[c].steps <= 0) continue;
        sum += e->comps[c].steps * predict_pass(e, c, p, bandwidth, compute, 0);
        steps += e->comps[c].steps;
    }
    return steps ? sum / steps : predict_pass(e, e->planner.step_comp, p, bandwidth, compute, 0);
}

double fy_engine_predict_component(const fy_engine *e, const char *component, const fy_plan *p, double bandwidth,
                                   const double *compute)
{
    for (int c = 0; component && c < e->n_comps; c++)
        if (strcmp(e->comps[c].name, component) == 0) return predict_pass(e, c, p, bandwidth, compute, 0);
    return 0;
}

/* The component whose block pass is a step: "transformer" when declared
 * (the denoising loop repeats it; the text encoder and the VAE run once),
 * else the one with the most blocks. */
void fy_eng_planner_init_steps(fy_engine *e)
{
    eng_planner *pl = &e->planner;
    pl->step_comp = fy_eng_step_component(e, &pl->first_block);
}

/* One timed upload of a probe buffer (after a warm-up copy), with the
 * engine's copy observer detached so it counts in no stats. */
static fy_status measure_bandwidth(fy_engine *e, uint64_t budget, double *out)
{
    fy_backend *b = e->backend;
    uint64_t largest = 0;
    for (int i = 0; i < e->n_groups; i++) largest = e->groups[i].bytes > largest ? e->groups[i].bytes : largest;
    uint64_t n = 2 * largest;
    if (n < PLANNER_PROBE_MIN) n = PLANNER_PROBE_MIN;
    if (n > PLANNER_PROBE_MAX) n = PLANNER_PROBE_MAX;
    if (budget && n > budget / 2) n = budget / 2;
    if (n < 4096) n = 4096;
    void *dev = NULL, *host = NULL;
    fy_event *done = NULL;
    bool locked = false;
    fy_status s = b->vt->alloc_device(b, n, &dev);
    if (s == FY_OK) s = b->vt->alloc_pinned(b, n, &host, &locked);
    if (s == FY_OK) s = b->vt->event_create(b, &done);
    fy_backend_set_copy_observer(b, NULL, NULL);
    double t0 = 0, t1 = 0;
    if (s == FY_OK) {
        memset(host, 1, n);
        s = fy_backend_copy_h2d_async(b, dev, host, n, FY_STREAM_COPY, "bandwidth probe");
        if (s == FY_OK) s = fy_backend_event_record(b, done, FY_STREAM_COPY);
        if (s == FY_OK) s = b->vt->event_synchronize(b, done);
        t0 = fy_backend_now();
        if (s == FY_OK) s = fy_backend_copy_h2d_async(b, dev, host, n, FY_STREAM_COPY, "bandwidth probe");
        if (s == FY_OK) s = fy_backend_event_record(b, done, FY_STREAM_COPY);
        if (s == FY_OK) s = b->vt->event_synchronize(b, done);
        t1 = fy_backend_now();
    }
    fy_backend_set_copy_observer(b, fy_eng_stats_observe_copy, e);
    if (done) b->vt->event_destroy(b, done);
    if (host) b->vt->free_pinned(b, host, n);
    if (dev) b->vt->free_device(b, dev, n);
    *out = t1 > t0 ? (double)n / (t1 - t0) : 0;
    return s;
}

static fy_status planner_budget(fy_engine *e, uint64_t *out)
{
    const fy_run_options *o = &e->opts;
    uint64_t budget = o->vram_budget;
    if (o->vram_budget_auto) {
        uint64_t free_b = 0, total = 0;
        if (e->backend->vt->mem_info) FY_TRY(e->backend->vt->mem_info(e->backend, &free_b, &total));
        bool exact = strcmp(fy_backend_name(e->backend), "emu") == 0;
        uint64_t margin = exact ? 0 : (uint64_t)((double)total * PLANNER_AUTO_MARGIN);
        budget = free_b > margin ? free_b - margin : 0;
        if (!total) budget = UINT64_MAX; /* unlimited device (unbudgeted emu, cpu): no constraint */
    }
    if (e->stats.device_budget && e->stats.device_budget < budget) budget = e->stats.device_budget;
    *out = budget;
    return FY_OK;
}

/* Compute seconds per group before anything runs: its declared FLOPs at the
 * rate (unless by_bytes), else the guess from its bytes. */
static void estimate_compute(const fy_engine *e, double rate, bool by_bytes, double *compute)
{
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        double flops = g->flops > 0 && !by_bytes ? g->flops : (double)g->bytes * PLANNER_FLOP_PER_BYTE;
        compute[i] = flops / rate;
    }
}

/* Whether the step component declared its blocks' FLOPs, and their sum. */
static bool step_flops(const fy_engine *e, double *sum)
{
    *sum = 0;
    bool all = e->planner.step_comp >= 0;
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        if (g->kind != FY_GROUP_BLOCK || g->component != e->planner.step_comp) continue;
        *sum += g->flops;
        all = all && g->flops > 0;
    }
    return all;
}

static void candidate(const fy_engine *e, fy_offload_policy policy, int depth, int k, fy_run_options *o)
{
    *o = e->opts;
    o->offload = policy;
    o->prefetch_depth = depth > 0 ? depth : 1;
    o->resident_blocks = policy == FY_OFFLOAD_NONE ? -1 : k;
    o->resident_bytes = 0;
    o->num_blocks_per_group = 1;
    o->use_stream = false;
}

/* The best fitting candidate; ties go to the earlier one (more resident,
 * shallower). Sequential only when no layerwise plan fits: its one extra
 * resident block wins only when compute is far below the uploads, and the
 * compute estimate before step 1 is too rough to bet the overlap on it. */
static bool choose(fy_engine *e, uint64_t budget, const double *compute, bool sequential, fy_run_options *best,
                   double *best_t)
{
    bool found = false;
    for (int k = e->n_blocks; k >= 0; k--) {
        for (int variant = 0; variant <= PLANNER_MAX_DEPTH; variant++) {
            fy_offload_policy policy = k == e->n_blocks ? FY_OFFLOAD_NONE
                                       : variant == PLANNER_MAX_DEPTH ? FY_OFFLOAD_SEQUENTIAL
                                                                      : FY_OFFLOAD_LAYERWISE;
            if (k == e->n_blocks && variant > 0) break;
            if ((policy == FY_OFFLOAD_SEQUENTIAL) != sequential && policy != FY_OFFLOAD_NONE) continue;
            fy_run_options o;
            candidate(e, policy, variant + 1, k, &o);
            fy_plan p;
            if (fy_eng_plan(e, &o, &p, false) != FY_OK || p.device_bound > budget) continue;
            double t = plan_cost(e, &p, e->planner.bandwidth, compute);
            if (!found || t < *best_t * 0.999) {
                *best = o;
                *best_t = t;
                found = true;
            }
        }
    }
    return found;
}

static bool choose_plan(fy_engine *e, uint64_t budget, const double *compute, fy_run_options *best, double *t)
{
    return choose(e, budget, compute, false, best, t) || choose(e, budget, compute, true, best, t);
}

/* --storage-dtype auto: the same search with the castable weights laid out
 * in fp8_e4m3 (the format that measured closer to bf16, bench/RESULTS.md),
 * kept only when its predicted step is faster (or when nothing else fits).
 * compute stays the as-stored estimate: casting halves the bytes moved,
 * not the arithmetic. */
static fy_status choose_storage(fy_engine *e, uint64_t budget, const double *compute, bool *ok, fy_run_options *best,
                                double *t)
{
    FY_TRY(fy_eng_cast_layout(e, FY_F8_E4M3));
    fy_run_options best8;
    double t8 = 0;
    bool ok8 = choose_plan(e, budget, compute, &best8, &t8);
    if (ok8 && (!*ok || t8 < *t * 0.999)) {
        *ok = true;
        *best = best8;
        *t = t8;
        e->opts.storage_dtype = FY_F8_E4M3;
        return FY_OK;
    }
    return fy_eng_cast_layout(e, FY_DTYPE_COUNT);
}

/* The chosen plan's step from the weights' bytes alone, for `ferry plan`
 * to show beside the FLOP-based one. */
static fy_status estimate_by_bytes(fy_engine *e, const fy_run_options *best, double *compute)
{
    fy_plan p;
    FY_TRY(fy_eng_plan(e, best, &p, false));
    estimate_compute(e, e->planner.flop_rate, true, compute);
    e->planner.bytes_s = plan_cost(e, &p, e->planner.bandwidth, compute);
    return FY_OK;
}

fy_status fy_eng_planner_choose(fy_engine *e)
{
    eng_planner *pl = &e->planner;
    const fy_run_options *o = &e->opts;
    if (!o->vram_budget && !o->vram_budget_auto) return FY_OK;
    if (e->backend->unified_host_memory) return FY_OK; /* weights are read in place: nothing to plan */
    fy_eng_planner_init_steps(e);
    FY_TRY(planner_budget(e, &pl->budget));
    FY_TRY(measure_bandwidth(e, pl->budget == UINT64_MAX ? 0 : pl->budget, &pl->bandwidth));
    double *compute = calloc((size_t)(e->n_groups ? e->n_groups : 1), sizeof *compute);
    if (!compute) return fy_error(FY_ERR_NOMEM, "planner: out of memory");
    pl->flop_rate = fy_eng_flop_rate(e, &pl->rate_measured);
    pl->flop_based = step_flops(e, &pl->step_flops);
    estimate_compute(e, pl->flop_rate, false, compute);
    fy_run_options best;
    double t = 0;
    bool ok = choose_plan(e, pl->budget, compute, &best, &t);
    fy_status st = FY_OK;
    if (o->storage_auto && fy_eng_cast_any(e)) st = choose_storage(e, pl->budget, compute, &ok, &best, &t);
    if (st == FY_OK && ok) st = estimate_by_bytes(e, &best, compute);
    free(compute);
    FY_TRY(st);
    if (!ok) {
        fy_run_options smallest;
        candidate(e, FY_OFFLOAD_SEQUENTIAL, 1, 0, &smallest);
        fy_plan p;
        FY_TRY(fy_eng_plan(e, &smallest, &p, false));
        char need[32], have[32];
        fy_format_bytes(pl->budget, have, sizeof have);
        fy_format_bytes(p.device_bound, need, sizeof need);
        if (o->budget_from_max_memory)
            return fy_error(FY_ERR_BUDGET,
                            "--max-memory %d=%s: no plan fits; the smallest (sequential) needs %s of device memory "
                            "(raise --max-memory)", o->device_index, have, need);
        return fy_error(FY_ERR_BUDGET,
                        "--vram-budget %s: no plan fits; the smallest (sequential) needs %s of device memory "
                        "(raise the budget)", have, need);
    }
    e->opts.offload = best.offload;
    e->opts.prefetch_depth = best.prefetch_depth;
    e->opts.resident_blocks = best.resident_blocks;
    e->opts.resident_bytes = 0;
    pl->active = true;
    pl->initial_s = t;
    e->stats.predicted_initial_step_s = t;
    e->stats.copy_bandwidth = pl->bandwidth;
    e->stats.flop_rate = pl->flop_rate;
    e->stats.vram_budget = pl->budget == UINT64_MAX ? 0 : pl->budget;
    return device_clock_init(e);
}

/* `ferry plan`'s planner lines: the budget and bandwidth, both first
 * estimates (from FLOPs, from bytes) and which one chose the plan, and with
 * declared step counts each component's share. */
void fy_eng_planner_print(const fy_engine *e, FILE *f)
{
    const eng_planner *pl = &e->planner;
    const fy_engine_stats *s = &e->stats;
    char a[32];
    fprintf(f, "  planner      %s %s, copy %.2f GB/s measured; predicted step %.3g s (estimated compute)\n",
            e->opts.budget_from_max_memory ? "--max-memory" : "--vram-budget",
            s->vram_budget ? fy_format_bytes(s->vram_budget, a, sizeof a) : "unlimited", s->copy_bandwidth / 1e9,
            s->predicted_initial_step_s);
    char rate[96];
    snprintf(rate, sizeof rate, "%.3g GFLOP/s %s", pl->flop_rate / 1e9,
             pl->rate_measured ? "measured (a timed matrix product)" : "assumed");
    if (pl->flop_based) {
        double v = pl->step_flops;
        const char *unit = v >= 1e12 ? "TFLOP" : v >= 1e9 ? "GFLOP" : "MFLOP";
        v /= v >= 1e12 ? 1e12 : v >= 1e9 ? 1e9 : 1e6;
        fprintf(f, "  estimate     from FLOPs (used): %.3g s a step, %.3g %s at %s; from the weights' bytes "
                   "alone: %.3g s\n", pl->initial_s, v, unit, rate, pl->bytes_s);
    }
    else
        fprintf(f, "  estimate     from the weights' bytes (used: the model declares no FLOPs): %.3g s a step at %s\n",
                pl->bytes_s, rate);
    int declared = 0;
    for (int c = 0; c < e->n_comps; c++) declared += e->comps[c].steps > 0;
    if (!declared) return;
    double *compute = calloc((size_t)(e->n_groups ? e->n_groups : 1), sizeof *compute);
    if (!compute) return;
    estimate_compute(e, pl->flop_rate, !pl->flop_based, compute);
    double total = 0;
    fprintf(f, "  steps        ");
    for (int c = 0, k = 0; c < e->n_comps; c++) {
        if (e->comps[c].steps <= 0) continue;
        double t = predict_pass(e, c, &e->plan, pl->bandwidth, compute, 0);
        total += e->comps[c].steps * t;
        fprintf(f, "%s%s %d x %.3g s", k++ ? ", " : "", e->comps[c].name, e->comps[c].steps, t);
    }
    fprintf(f, ": %.3g s of denoising\n", total);
    free(compute);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[from..n), sorted in a copy. */
static double median(const double *v, int n, int from)
{
    if (from >= n) from = 0;
    int m = n - from;
    if (m <= 0) return 0;
    double *c = malloc((size_t)m * sizeof *c);
    if (!c) return v[n - 1];
    memcpy(c, v + from, (size_t)m * sizeof *c);
    qsort(c, (size_t)m, sizeof *c, cmp_double);
    double r = m % 2 ? c[m / 2] : 0.5 * (c[m / 2 - 1] + c[m / 2]);
    free(c);
    return r;
}

/* Re-predict the chosen plan with measured compute: the first step's spans
 * (first_only) or the later steps' means. */
static void refine(fy_engine *e, bool first_only)
{
    eng_planner *pl = &e->planner;
    if (!pl->active || !pl->n_cycles) return;
    double *compute = calloc((size_t)e->n_groups, sizeof *compute);
    if (!compute) return;
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        compute[i] = !first_only && g->span_n ? g->span_sum / g->span_n : g->span_first;
    }
    double gap = median(pl->gap_s, pl->n_cycles, first_only ? 0 : 1);
    pl->refined_s = fy_engine_predict_step(e, &e->plan, pl->bandwidth, compute, gap);
    free(compute);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.predicted_step_s = pl->refined_s;
    if (first_only) e->stats.predicted_after_first_s = pl->refined_s;
    pthread_mutex_unlock(&e->stats_mu);
}

/* One finished step: its duration and the time spent outside blocks. */
static void record_cycle(fy_engine *e, double d, double gap)
{
    eng_planner *pl = &e->planner;
    if (pl->n_cycles == pl->cap_cycles) {
        int cap = pl->cap_cycles ? 2 * pl->cap_cycles : 16;
        double *c = realloc(pl->cycle_s, (size_t)cap * sizeof *c);
        if (c) pl->cycle_s = c;
        double *g = c ? realloc(pl->gap_s, (size_t)cap * sizeof *g) : NULL;
        if (g) pl->gap_s = g;
        if (!c || !g) return; /* out of memory: this step goes unmeasured */
        pl->cap_cycles = cap;
    }
    pl->cycle_s[pl->n_cycles] = d;
    pl->gap_s[pl->n_cycles] = dmax(0, gap);
    pl->n_cycles++;
    if (pl->n_cycles == 1) {
        pthread_mutex_lock(&e->stats_mu);
        e->stats.first_step_s = d;
        pthread_mutex_unlock(&e->stats_mu);
        refine(e, true);
    }
}

static void note_span(eng_group *g, double span, bool first_step)
{
    if (first_step) g->span_first = span;
    else {
        g->span_sum += span;
        g->span_n++;
    }
}

void fy_eng_planner_on_acquire(fy_engine *e, const eng_group *g, double now)
{
    eng_planner *pl = &e->planner;
    if (pl->device_clock || pl->first_block < 0 || g != &e->groups[pl->first_block]) return;
    if (pl->marks++) {
        double d = now - pl->mark;
        record_cycle(e, d, d - pl->cycle_compute - (e->stats.stall_time - pl->mark_stall));
    }
    pl->mark = now;
    pl->mark_stall = e->stats.stall_time;
    pl->cycle_compute = 0;
}

void fy_eng_planner_on_release(fy_engine *e, eng_group *g, double span)
{
    eng_planner *pl = &e->planner;
    if (g->kind != FY_GROUP_BLOCK || g->component != pl->step_comp || !pl->marks) return;
    if (pl->device_clock) {
        b_record(e, pl->end[g - e->groups]);
        pl->last_block = (int)(g - e->groups);
        return;
    }
    pl->cycle_compute += span;
    note_span(g, span, pl->marks == 1);
}

/* ---- Timing by the device's clock (asynchronous compute) ---------------- */

static void b_record(fy_engine *e, fy_event *ev)
{
    if (ev) (void)fy_backend_event_record(e->backend, ev, FY_STREAM_COMPUTE);
}

static double elapsed(fy_engine *e, fy_event *a, fy_event *b)
{
    double s = 0;
    if (e->backend->vt->event_elapsed(e->backend, a, b, &s) != FY_OK) return 0;
    return s;
}

/* The step that ended where mark `now` was recorded: every block's span
 * from its events, the step from mark to mark, the time outside blocks
 * from the last block's end to the next step's start. */
static void close_device_cycle(fy_engine *e, fy_event *prev, fy_event *now)
{
    eng_planner *pl = &e->planner;
    if (e->backend->vt->event_synchronize(e->backend, now) != FY_OK) return;
    bool first_step = pl->n_cycles == 0;
    for (int i = 0; i < e->n_groups; i++)
        if (pl->start[i]) note_span(&e->groups[i], elapsed(e, pl->start[i], pl->end[i]), first_step);
    double gap = pl->last_block >= 0 ? elapsed(e, pl->end[pl->last_block], now) : 0;
    record_cycle(e, elapsed(e, prev, now), gap);
}

void fy_eng_planner_on_ready(fy_engine *e, const eng_group *g)
{
    eng_planner *pl = &e->planner;
    if (!pl->device_clock || g->kind != FY_GROUP_BLOCK || g->component != pl->step_comp) return;
    int id = (int)(g - e->groups);
    if (id == pl->first_block) {
        fy_event *now = pl->step_mark[pl->marks % 2];
        b_record(e, now);
        if (pl->marks > 0) close_device_cycle(e, pl->step_mark[(pl->marks - 1) % 2], now);
        pl->marks++;
    }
    if (pl->marks) b_record(e, pl->start[id]);
}

/* Events for every block of the step component, when the device has its own clock. */
static fy_status device_clock_init(fy_engine *e)
{
    eng_planner *pl = &e->planner;
    fy_backend *b = e->backend;
    if (!b->vt->event_elapsed || pl->step_comp < 0) return FY_OK;
    pl->start = calloc((size_t)e->n_groups, sizeof *pl->start);
    pl->end = calloc((size_t)e->n_groups, sizeof *pl->end);
    if (!pl->start || !pl->end) return fy_error(FY_ERR_NOMEM, "planner: out of memory");
    for (int k = 0; k < 2; k++) FY_TRY(b->vt->event_create(b, &pl->step_mark[k]));
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        if (g->kind != FY_GROUP_BLOCK || g->component != pl->step_comp) continue;
        FY_TRY(b->vt->event_create(b, &pl->start[i]));
        FY_TRY(b->vt->event_create(b, &pl->end[i]));
    }
    pl->last_block = -1;
    pl->device_clock = true;
    return FY_OK;
}

void fy_eng_planner_finish(fy_engine *e)
{
    eng_planner *pl = &e->planner;
    if (!pl->n_cycles) return;
    refine(e, false);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.measured_step_s = median(pl->cycle_s, pl->n_cycles, 1);
    pthread_mutex_unlock(&e->stats_mu);
}

void fy_eng_planner_free(fy_engine *e)
{
    eng_planner *pl = &e->planner;
    fy_backend *b = e->backend;
    for (int i = 0; pl->start && i < e->n_groups; i++) {
        if (pl->start[i]) b->vt->event_destroy(b, pl->start[i]);
        if (pl->end[i]) b->vt->event_destroy(b, pl->end[i]);
    }
    for (int k = 0; k < 2; k++)
        if (pl->step_mark[k]) b->vt->event_destroy(b, pl->step_mark[k]);
    free(pl->start);
    free(pl->end);
    free(pl->cycle_s);
    free(pl->gap_s);
    memset(pl, 0, sizeof *pl);
}
