/* The single-rank communicator, the world without mpirun, and the engine's
 * fsdp plan on one rank (cpu and emu): the same numbers as no offload, the
 * shard accounting, the ring cycling through more blocks than slots. Two and
 * three real ranks are tests/cli/fsdp.sh's (mpirun). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ferry/collectives.h"
#include "ferry/engine.h"
#include "support/synth_model.h"

static void test_single_collectives(void **state)
{
    (void)state;
    fy_comm *c = NULL;
    assert_int_equal(fy_comm_create_single(&c), FY_OK);
    assert_int_equal(fy_comm_rank(c), 0);
    assert_int_equal(fy_comm_size(c), 1);
    assert_string_equal(fy_comm_name(c), "single");
    assert_false(fy_comm_device_buffers(c));
    char send[5] = "abcd", recv[5] = {0};
    assert_int_equal(fy_comm_all_gather(c, send, recv, 4), FY_OK);
    assert_memory_equal(recv, "abcd", 4);
    assert_int_equal(fy_comm_all_gather(c, recv, recv, 4), FY_OK); /* in place */
    assert_memory_equal(recv, "abcd", 4);
    fy_comm_request *r = NULL;
    bool done = false;
    memset(recv, 0, sizeof recv);
    assert_int_equal(fy_comm_all_gather_start(c, send, recv, 4, &r), FY_OK);
    assert_int_equal(fy_comm_test(c, r, &done), FY_OK);
    assert_true(done);
    assert_memory_equal(recv, "abcd", 4);
    assert_int_equal(fy_comm_all_gather_start(c, send, recv, 0, &r), FY_OK);
    assert_int_equal(fy_comm_wait(c, r), FY_OK);
    assert_int_equal(fy_comm_broadcast(c, send, 4, 0), FY_OK);
    assert_memory_equal(send, "abcd", 4);
    assert_int_equal(fy_comm_broadcast(c, send, 4, 1), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "root 1"));
    assert_int_equal(fy_comm_barrier(c), FY_OK);
    fy_comm_free(c);
}

static void test_timeout_setting(void **state)
{
    (void)state;
    fy_comm *c = NULL;
    assert_int_equal(fy_comm_create_single(&c), FY_OK);
    assert_true(fy_comm_timeout(c) == FY_COMM_DEFAULT_TIMEOUT);
    fy_comm_set_timeout(c, 2.5);
    assert_true(fy_comm_timeout(c) == 2.5);
    fy_comm_set_timeout(c, 0); /* not a deadline: the default */
    assert_true(fy_comm_timeout(c) == FY_COMM_DEFAULT_TIMEOUT);
    fy_comm_free(c);
}

static void test_world_without_mpirun(void **state)
{
    (void)state;
    if (fy_dist_launched()) skip();
    assert_null(fy_dist_world());
    assert_int_equal(fy_dist_init(7.0), FY_OK);
    fy_comm *w = fy_dist_world();
    assert_non_null(w);
    assert_string_equal(fy_comm_name(w), "single");
    assert_true(fy_comm_timeout(w) == 7.0);
    assert_int_equal(fy_dist_init(1.0), FY_OK); /* once */
    assert_ptr_equal(fy_dist_world(), w);
    fy_dist_finalize(true);
    assert_null(fy_dist_world());
}

static void test_nccl_needs_the_build(void **state)
{
    (void)state;
#ifdef FERRY_HAVE_NCCL
    skip(); /* scripts/gpu-check runs it on a GPU */
#else
    fy_comm *boot = NULL, *c = NULL;
    assert_int_equal(fy_comm_create_single(&boot), FY_OK);
    assert_int_equal(fy_comm_create_nccl(boot, 0, &c), FY_ERR_UNSUPPORTED);
    assert_null(c);
    assert_non_null(strstr(fy_error_message(), "NCCL"));
    fy_comm_free(boot);
#endif
}

/* ---- The engine's fsdp plan on one rank -------------------------------- */

static const fyt_synth_config cfg = {.blocks = 6, .dim = 40, .rows = 8, .bias = true};

static float *run(fyt_synth *s, const fy_run_options *o, fy_engine_stats *stats, fy_plan *plan)
{
    float *out = calloc((size_t)cfg.rows * (size_t)cfg.dim, sizeof *out);
    assert_non_null(out);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(s, e), FY_OK);
    fy_status st = fy_engine_prepare(e);
    if (st == FY_OK) st = fyt_synth_run(s, e, 3, out);
    if (st == FY_OK) st = fy_engine_finish(e);
    if (st != FY_OK) fail_msg("%s", fy_error_message());
    if (stats) *stats = *fy_engine_stats_get(e);
    if (plan) *plan = *fy_engine_plan(e);
    if (fy_engine_plan(e)->fsdp)
        for (int g = 1; g <= cfg.blocks; g++) assert_int_equal(fy_engine_group_tier(e, g), FY_TIER_SHARDED);
    fy_engine_free(e);
    return out;
}

static void test_engine_fsdp_one_rank(void **state)
{
    (void)state;
    fyt_synth *s = NULL;
    assert_int_equal(fyt_synth_create(&cfg, &s), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    float *ref = run(s, &o, NULL, NULL);
    static const fy_device_kind devices[] = {FY_DEVICE_CPU, FY_DEVICE_EMU};
    for (size_t d = 0; d < 2; d++) {
        for (int depth = 1; depth <= 3; depth++) {
            for (int pinned = 0; pinned < 2; pinned++) {
                fy_run_options f;
                fy_run_options_init(&f);
                f.device = devices[d];
                f.use_fsdp_inference = true;
                f.dit_cpu_offload = pinned;
                f.prefetch_depth = depth;
                assert_int_equal(fy_run_options_validate(&f), FY_OK);
                fy_engine_stats st;
                fy_plan p;
                float *out = run(s, &f, &st, &p);
                assert_memory_equal(out, ref, (size_t)cfg.rows * (size_t)cfg.dim * sizeof *out);
                assert_true(p.fsdp);
                assert_int_equal(p.ranks, 1);
                assert_int_equal(p.slots, depth + 1);
                assert_int_equal(st.ranks, 1);
                assert_int_equal(st.shard_bytes, (uint64_t)cfg.blocks * fyt_synth_block_bytes(s));
                assert_int_equal(st.sharded_bytes, st.shard_bytes);
                /* 6 blocks through depth + 1 < 6 slots: every use is a gather,
                 * plus the next step's first blocks, prefetched at the end. */
                uint64_t block = fyt_synth_block_bytes(s);
                assert_true(st.bytes_gathered >= (uint64_t)(3 * cfg.blocks) * block);
                assert_true(st.bytes_gathered <= (uint64_t)(3 * cfg.blocks + depth + 1) * block);
                if (devices[d] == FY_DEVICE_EMU) assert_true(st.bytes_uploaded >= st.bytes_gathered);
                free(out);
            }
        }
    }
    free(ref);
    fyt_synth_free(s);
}

static void test_fsdp_flag_conflicts(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    o.dit_cpu_offload = true;
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    o.use_fsdp_inference = true;
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    o.offload = FY_OFFLOAD_LAYERWISE;
    o.offload_explicit = true;
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    fy_run_options_init(&o);
    o.use_fsdp_inference = true;
    o.vram_budget_auto = true;
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_collectives),
        cmocka_unit_test(test_timeout_setting),
        cmocka_unit_test(test_world_without_mpirun),
        cmocka_unit_test(test_nccl_needs_the_build),
        cmocka_unit_test(test_engine_fsdp_one_rank),
        cmocka_unit_test(test_fsdp_flag_conflicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
