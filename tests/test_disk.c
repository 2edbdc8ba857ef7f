/* The disk tier (--max-memory cpu=SIZE below what the host tier would hold),
 * with the synthetic model on --device cpu and emu: every plan it applies to
 * gives the all-in-RAM run's output bit for bit, the host budget holds, an
 * impossible budget fails before any work, a file truncated mid-run fails
 * with a clear error, and the trace gets a disk track. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/backend.h"
#include "ferry/engine.h"
#include "ferry/log.h"
#include "ferry/safetensors.h"
#include "mem/disk.h"
#include "support/fyt.h"
#include "support/synth_model.h"

#define STEPS 3

#if defined(__SANITIZE_ADDRESS__)
#define FYT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FYT_ASAN 1
#endif
#endif

#ifdef FYT_ASAN
/* Allocations over 1 GiB return NULL instead of aborting the test, so the
 * disk tier's out-of-memory path can be reached on purpose. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=1024";
}
#endif

static const fyt_synth_config cfg8 = {.blocks = 8, .dim = 96, .rows = 16, .bias = true};

typedef fyt_synth_result run_result;

static fy_run_options options(fy_device_kind device)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = device;
    return o;
}

static run_result run(fyt_synth *s, const fy_run_options *o, int steps)
{
    run_result r = fyt_synth_run_engine(s, o, steps);
    assert_non_null(r.out);
    return r;
}

static fyt_synth *make_synth(const fyt_synth_config *cfg)
{
    fyt_synth *s = NULL;
    if (fyt_synth_create(cfg, &s) != FY_OK) fail_msg("synth: %s", fy_error_message());
    return s;
}

/* The model's bytes as the engine lays them out: embed + blocks. */
static uint64_t model_bytes(const fyt_synth *s)
{
    const fyt_synth_config *c = fyt_synth_cfg(s);
    uint64_t embed = ((uint64_t)c->dim * (uint64_t)c->dim * 4 + 255) / 256 * 256;
    return embed + (uint64_t)c->blocks * fyt_synth_block_bytes(s);
}

/* Host bytes the engine holds: its buffers, plus on cpu the weights it reads in place. */
static uint64_t host_held(const run_result *r, fy_device_kind device)
{
    return r->stats.host_bytes + (device == FY_DEVICE_CPU ? r->stats.mapped_bytes : 0);
}

static void check_disk_run(const fyt_synth *s, const run_result *ref, const run_result *r, fy_device_kind device,
                           uint64_t budget)
{
    const fyt_synth_config *cfg = fyt_synth_cfg(s);
    if (r->status != FY_OK) fail_msg("%s", fy_error_message());
    assert_memory_equal(ref->out, r->out, (size_t)cfg->rows * (size_t)cfg->dim * sizeof(float));
    assert_true(r->stats.disk_groups > 0);
    assert_true(r->stats.disk_bytes_read >= fyt_synth_block_bytes(s));
    assert_true(r->stats.disk_read_time > 0);
    assert_true(r->stats.host_bound <= budget);
    assert_true(host_held(r, device) <= budget);
    assert_true(r->stats.disk_stall_time <= r->stats.stall_time + 1e-9);
}

static void test_disk_matches_ram(void **state)
{
    fyt_synth *s = make_synth(&cfg8);
    uint64_t half = model_bytes(s) / 2;
    fy_device_kind devices[2] = {FY_DEVICE_CPU, FY_DEVICE_EMU};
    for (int d = 0; d < 2; d++) {
        fy_run_options o = options(devices[d]);
        run_result ref = run(s, &o, STEPS);
        assert_int_equal(ref.status, FY_OK);
        assert_int_equal(ref.stats.disk_groups, 0);

        fy_run_options v[12];
        int n = 0;
        v[n++] = options(devices[d]);
        v[n] = options(devices[d]); v[n++].offload = FY_OFFLOAD_SEQUENTIAL;
        v[n] = options(devices[d]); v[n++].offload = FY_OFFLOAD_MODEL;
        for (int depth = 1; depth <= 3; depth++) {
            v[n] = options(devices[d]);
            v[n].offload = FY_OFFLOAD_LAYERWISE;
            v[n++].prefetch_depth = depth;
        }
        for (int stream = 0; stream < 2; stream++) {
            v[n] = options(devices[d]);
            v[n].offload = FY_OFFLOAD_GROUP;
            v[n].num_blocks_per_group = 3;
            v[n++].use_stream = stream;
        }
        v[n] = options(devices[d]); v[n].offload = FY_OFFLOAD_LAYERWISE; v[n++].resident_blocks = 2;
        v[n] = options(devices[d]); v[n].offload = FY_OFFLOAD_LAYERWISE; v[n++].low_cpu_mem_usage = true;
        v[n] = options(devices[d]); v[n].offload = FY_OFFLOAD_LAYERWISE; v[n++].pin_cpu_memory = false;
        for (int i = 0; i < n; i++) {
            v[i].max_memory_cpu = half;
            run_result r = run(s, &v[i], STEPS);
            /* On a device `none` holds nothing on the host: no disk tier. */
            bool none = devices[d] == FY_DEVICE_EMU && v[i].offload == FY_OFFLOAD_NONE;
            if (none) {
                assert_int_equal(r.status, FY_OK);
                assert_int_equal(r.stats.disk_groups, 0);
            } else {
                check_disk_run(s, &ref, &r, devices[d], half);
            }
            free(r.out);
        }
        free(ref.out);
    }
    fyt_synth_free(s);
}

/* A budget between the minimum and the whole model keeps some blocks in
 * host memory and reads the rest from disk. */
static void test_partial_disk_tier(void **state)
{
    fyt_synth *s = make_synth(&cfg8);
    fy_device_kind devices[2] = {FY_DEVICE_CPU, FY_DEVICE_EMU};
    for (int d = 0; d < 2; d++) {
        fy_run_options o = options(devices[d]);
        o.offload = FY_OFFLOAD_LAYERWISE;
        run_result ref = run(s, &o, STEPS);
        assert_int_equal(ref.status, FY_OK);
        o.max_memory_cpu = model_bytes(s) - 2 * fyt_synth_block_bytes(s);
        run_result r = run(s, &o, STEPS);
        check_disk_run(s, &ref, &r, devices[d], o.max_memory_cpu);
        assert_true(r.stats.disk_groups < 8);
        free(ref.out);
        free(r.out);
    }
    fyt_synth_free(s);
}

static void test_impossible_host_budget(void **state)
{
    fyt_synth *s = make_synth(&cfg8);
    fy_device_kind devices[2] = {FY_DEVICE_CPU, FY_DEVICE_EMU};
    for (int d = 0; d < 2; d++) {
        fy_run_options o = options(devices[d]);
        o.offload = FY_OFFLOAD_LAYERWISE;
        o.max_memory_cpu = fyt_synth_block_bytes(s);
        run_result r = run(s, &o, STEPS);
        assert_int_equal(r.status, FY_ERR_BUDGET);
        const char *msg = fy_error_message();
        assert_non_null(strstr(msg, "--max-memory cpu="));
        assert_non_null(strstr(msg, "raise it to at least"));
        assert_int_equal(r.stats.bytes_uploaded, 0); /* failed before any work */
        assert_int_equal(r.stats.disk_bytes_read, 0);
        free(r.out);
    }
    fyt_synth_free(s);
}

/* The file loses its blocks while the engine runs: a clear error naming the
 * file, not a crash (the disk tier never touches the mapping's lost pages). */
static void test_truncated_file_mid_run(void **state)
{
    fy_device_kind devices[2] = {FY_DEVICE_CPU, FY_DEVICE_EMU};
    for (int d = 0; d < 2; d++) {
        fyt_synth *s = make_synth(&cfg8);
        fy_run_options o = options(devices[d]);
        o.offload = FY_OFFLOAD_LAYERWISE;
        o.max_memory_cpu = model_bytes(s) / 2;
        const fyt_synth_config *cfg = fyt_synth_cfg(s);
        float *out = calloc((size_t)cfg->rows * (size_t)cfg->dim, sizeof(float));
        fy_engine *e = NULL;
        assert_int_equal(fy_engine_create(&o, &e), FY_OK);
        assert_int_equal(fyt_synth_declare(s, e), FY_OK);
        assert_int_equal(fy_engine_prepare(e), FY_OK);
        /* Keep the first half: the header, the embedding and the blocks kept
         * in place (cpu) are there; later blocks are not. */
        struct stat st_file;
        assert_int_equal(stat(fyt_synth_path(s), &st_file), 0);
        assert_int_equal(truncate(fyt_synth_path(s), st_file.st_size / 2), 0);
        fy_status st = fyt_synth_run(s, e, STEPS, out);
        assert_int_equal(st, FY_ERR_IO);
        assert_non_null(strstr(fy_error_message(), fyt_synth_path(s)));
        assert_non_null(strstr(fy_error_message(), "truncated"));
        fy_engine_free(e);
        free(out);
        fyt_synth_free(s);
    }
}

/* ---- Half-built readers and a failing backend ------------------------------ */

/* A real emu backend whose pinned allocations, event creations or event
 * waits fail after a set number of successes. */
typedef struct flaky_backend {
    fy_backend base;
    fy_backend_vtable vt;
    fy_backend *real;
    int pinned_left, events_left, syncs_left;
} flaky_backend;

static flaky_backend *flaky(fy_backend *b)
{
    return (flaky_backend *)b;
}

static fy_status flaky_alloc_pinned(fy_backend *b, size_t bytes, void **out, bool *pinned)
{
    *out = NULL;
    if (flaky(b)->pinned_left-- <= 0) return fy_error(FY_ERR_NOMEM, "flaky: no pinned memory");
    return flaky(b)->real->vt->alloc_pinned(flaky(b)->real, bytes, out, pinned);
}

static void flaky_free_pinned(fy_backend *b, void *p, size_t bytes)
{
    flaky(b)->real->vt->free_pinned(flaky(b)->real, p, bytes);
}

static fy_status flaky_event_create(fy_backend *b, fy_event **out)
{
    *out = NULL;
    if (flaky(b)->events_left-- <= 0) return fy_error(FY_ERR_DEVICE, "flaky: no events");
    return flaky(b)->real->vt->event_create(flaky(b)->real, out);
}

static void flaky_event_destroy(fy_backend *b, fy_event *ev)
{
    flaky(b)->real->vt->event_destroy(flaky(b)->real, ev);
}

static fy_status flaky_event_record(fy_backend *b, fy_event *ev, fy_stream s)
{
    return flaky(b)->real->vt->event_record(flaky(b)->real, ev, s);
}

static fy_status flaky_event_synchronize(fy_backend *b, fy_event *ev)
{
    if (flaky(b)->syncs_left-- <= 0) return fy_error(FY_ERR_DEVICE, "flaky: the device fell off the bus");
    return flaky(b)->real->vt->event_synchronize(flaky(b)->real, ev);
}

/* Not flaky, but every entry the disk tier calls must reach the real
 * backend with the real backend's pointer. */
static fy_status flaky_synchronize(fy_backend *b)
{
    return flaky(b)->real->vt->synchronize(flaky(b)->real);
}

static fy_status flaky_stream_wait_event(fy_backend *b, fy_stream s, fy_event *ev)
{
    return flaky(b)->real->vt->stream_wait_event(flaky(b)->real, s, ev);
}

static bool flaky_event_query(fy_backend *b, fy_event *ev)
{
    return flaky(b)->real->vt->event_query(flaky(b)->real, ev);
}

static void flaky_init(flaky_backend *f, int pinned_left, int events_left, int syncs_left)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(fy_backend_create_emu(0, 0, &f->real), FY_OK);
    f->vt = *f->real->vt;
    f->vt.alloc_pinned = flaky_alloc_pinned;
    f->vt.free_pinned = flaky_free_pinned;
    f->vt.event_create = flaky_event_create;
    f->vt.event_destroy = flaky_event_destroy;
    f->vt.event_record = flaky_event_record;
    f->vt.event_synchronize = flaky_event_synchronize;
    f->vt.synchronize = flaky_synchronize;
    f->vt.stream_wait_event = flaky_stream_wait_event;
    f->vt.event_query = flaky_event_query;
    f->base.vt = &f->vt;
    f->pinned_left = pinned_left;
    f->events_left = events_left;
    f->syncs_left = syncs_left;
}

/* Every way fy_disk_start can fail part way leaves a reader that
 * fy_disk_free takes apart (ASan/LSan check the frees). */
static void test_free_half_built_disk(void **state)
{
    fy_disk *d = NULL;
    assert_int_equal(fy_disk_create(NULL, 4, &d), FY_OK);
    fy_disk_free(d); /* planned nothing, never started */
    fy_disk_free(NULL);
    for (int k = 0; k < 6; k++) {
        flaky_backend f;
        flaky_init(&f, k < 3 ? k : 99, k < 3 ? 99 : k - 3, 99);
        bool pinned = false;
        assert_int_equal(fy_disk_create(&f.base, 2, &d), FY_OK);
        assert_int_not_equal(fy_disk_start(d, 3, 4096, 0, &pinned), FY_OK);
        assert_non_null(strstr(fy_error_message(), "flaky"));
        fy_disk_free(d);
        fy_backend_free(f.real);
    }
#ifdef FYT_ASAN
    /* The plans (about 100 B a group) are over the 1 GiB cap, the successor
     * table (4 B a group) is not: create fails with one array allocated. */
    d = NULL;
    assert_int_equal(fy_disk_create(NULL, 20 << 20, &d), FY_ERR_NOMEM);
    assert_null(d);
#endif
}

/* The reader must not read into a slot whose uploads it cannot confirm are
 * done: the failed wait is the group's error, not a silent overwrite. */
static void test_failed_upload_wait_is_reported(void **state)
{
    fyt_synth *s = make_synth(&cfg8);
    fy_st_file *file = NULL;
    assert_int_equal(fy_st_open(fyt_synth_path(s), &file), FY_OK);
    fy_tensor w;
    assert_int_equal(fy_st_view(file, fy_st_at(file, 0)->name, &w), FY_OK);
    flaky_backend f;
    flaky_init(&f, 99, 99, 0); /* every wait for a slot's uploads fails */
    fy_disk *d = NULL;
    uint64_t staged = 0;
    bool pinned = false;
    assert_int_equal(fy_disk_create(&f.base, 1, &d), FY_OK);
    assert_int_equal(fy_disk_plan_group(d, 0, "block", &w, 1, NULL, &staged), FY_OK);
    fy_disk_set_next(d, 0, 0);
    assert_int_equal(fy_disk_start(d, 2, staged, 0, &pinned), FY_OK);
    /* Both slots' first reads need no wait; the third read reuses slot 0. */
    int slot = -1;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fy_disk_wait(d, 0, &slot), FY_OK);
        assert_memory_equal(fy_disk_weight(d, slot, 0), w.data, fy_tensor_nbytes(&w));
        assert_int_equal(fy_disk_done(d, slot), FY_OK);
    }
    assert_int_equal(fy_disk_wait(d, 0, &slot), FY_ERR_DEVICE);
    assert_non_null(strstr(fy_error_message(), "waiting for the uploads"));
    assert_non_null(strstr(fy_error_message(), "fell off the bus"));
    fy_disk_free(d);
    fy_backend_free(f.real);
    fy_st_close(file);
    fyt_synth_free(s);
}

static int count_track(const cJSON *events, int tid, const char *phase)
{
    int n = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events)
    {
        const cJSON *t = cJSON_GetObjectItem(ev, "tid"), *ph = cJSON_GetObjectItem(ev, "ph");
        if (cJSON_IsNumber(t) && t->valueint == tid && cJSON_IsString(ph) && strcmp(ph->valuestring, phase) == 0) n++;
    }
    return n;
}

static void test_trace_and_report(void **state)
{
    fyt_synth *s = make_synth(&cfg8);
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "trace.json");
    fy_run_options o = options(FY_DEVICE_EMU);
    o.offload = FY_OFFLOAD_LAYERWISE;
    o.max_memory_cpu = model_bytes(s) / 2;
    o.trace_path = path;
    fy_engine *e = NULL;
    const fyt_synth_config *cfg = fyt_synth_cfg(s);
    float *out = calloc((size_t)cfg->rows * (size_t)cfg->dim, sizeof(float));
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(s, e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    assert_int_equal(fy_engine_group_tier(e, 1), FY_TIER_DISK);
    assert_string_equal(fy_tier_name(FY_TIER_DISK), "disk");
    assert_int_equal(fyt_synth_run(s, e, 2, out), FY_OK);
    assert_int_equal(fy_engine_finish(e), FY_OK);

    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    fy_engine_stats_print(e, f);
    fy_engine_plan_print(e, "synthetic", f);
    fclose(f);
    assert_non_null(strstr(text, "disk stall"));
    assert_non_null(strstr(text, "blocks on disk"));
    assert_non_null(strstr(text, "host budget"));
    assert_non_null(strstr(text, "  disk\n"));  /* a group's tier in the plan's table */
    free(text);
    fy_engine_free(e);

    size_t n = 0;
    char *json = fyt_read_file(path, &n);
    assert_non_null(json);
    cJSON *root = cJSON_ParseWithLength(json, n);
    assert_non_null(root);
    const cJSON *events = cJSON_GetObjectItem(root, "traceEvents");
    assert_true(count_track(events, 3, "X") >= 8); /* the reads */
    assert_int_equal(count_track(events, 3, "M"), 1);
    cJSON_Delete(root);
    free(json);
    free(out);
    free(path);
    fyt_remove_tree(dir);
    free(dir);
    fyt_synth_free(s);
}

int main(void)
{
    openblas_set_num_threads(1);
    fy_log_set_level(FY_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_matches_ram),
        cmocka_unit_test(test_partial_disk_tier),
        cmocka_unit_test(test_impossible_host_budget),
        cmocka_unit_test(test_truncated_file_mid_run),
        cmocka_unit_test(test_trace_and_report),
        cmocka_unit_test(test_free_half_built_disk),
        cmocka_unit_test(test_failed_upload_wait_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
