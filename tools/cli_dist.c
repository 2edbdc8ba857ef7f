/* The CLI under mpirun: the world communicator, quiet ranks other than 0,
 * and the test-only fault injection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/collectives.h"
#include "ferry/log.h"

int cli_rank(void)
{
    fy_comm *w = fy_dist_world();
    return w ? fy_comm_rank(w) : 0;
}

int cli_dist_start(const fy_run_options *o)
{
    if (!fy_dist_launched() && !o->use_fsdp_inference) return 0;
    if (fy_dist_init(o->collective_timeout) != FY_OK) return cli_fail();
    fy_comm *w = fy_dist_world();
    if (fy_comm_rank(w) != 0) {
        /* One report, one output: the other ranks print only errors. */
        if (!freopen("/dev/null", "w", stdout)) fy_warn("rank %d: cannot silence stdout", fy_comm_rank(w));
        fy_log_set_level(FY_LOG_ERROR);
    }
    fy_debug("rank %d of %d (%s)", fy_comm_rank(w), fy_comm_size(w), fy_comm_name(w));
    return 0;
}

void cli_dist_finish(int rc)
{
    fy_dist_finalize(rc == 0);
}

/* FERRY_TEST_RANK_EXIT=R:stepK[:hang]: rank R exits (status 3), or hangs,
 * when denoising step K (1-based) begins, as a crashed or stuck peer would. */
void cli_dist_test_hook(int step)
{
    const char *spec = getenv("FERRY_TEST_RANK_EXIT");
    int rank = -1, at = -1;
    if (!spec || sscanf(spec, "%d:step%d", &rank, &at) != 2) return;
    if (rank != cli_rank() || step != at) return;
    fprintf(stderr, "ferry: rank %d: FERRY_TEST_RANK_EXIT: %s at step %d\n", rank,
            strstr(spec, ":hang") ? "hanging" : "exiting", step);
    if (strstr(spec, ":hang"))
        for (;;) pause();
    _exit(3);
}
