/* What every communicator shares: accessors, the deadline loop that turns a
 * dead peer into an error, and the process's world communicator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/comm_internal.h"
#include "ferry/backend.h"

void fy_comm_init_base(fy_comm *c, const fy_comm_vtable *vt, int rank, int size)
{
    c->vt = vt;
    c->rank = rank;
    c->size = size;
    c->timeout = FY_COMM_DEFAULT_TIMEOUT;
    c->broken = false;
}

fy_status fy_comm_fail(fy_comm *c, fy_status s)
{
    if (!c->broken) snprintf(c->failure, sizeof c->failure, "%s", fy_error_message());
    c->broken = true;
    return s;
}

void fy_comm_free(fy_comm *c)
{
    if (c) c->vt->destroy(c);
}

int fy_comm_rank(const fy_comm *c)
{
    return c->rank;
}

int fy_comm_size(const fy_comm *c)
{
    return c->size;
}

const char *fy_comm_name(const fy_comm *c)
{
    return c->vt->name;
}

bool fy_comm_device_buffers(const fy_comm *c)
{
    return c->vt->device_buffers;
}

void fy_comm_set_timeout(fy_comm *c, double seconds)
{
    c->timeout = seconds > 0 ? seconds : FY_COMM_DEFAULT_TIMEOUT;
}

double fy_comm_timeout(const fy_comm *c)
{
    return c->timeout;
}

static fy_status check_usable(fy_comm *c)
{
    /* The first failure says what happened; later calls repeat it. */
    if (c->broken) return fy_error(FY_ERR_DEVICE, "%s", c->failure[0] ? c->failure : "a collective failed earlier");
    return FY_OK;
}

/* Poll with a short sleep: ranks may share cores (mpirun --oversubscribe),
 * and a spinning waiter would steal the time the others need to answer. */
static void pause_briefly(int round)
{
    struct timespec ts = {0, round < 100 ? 20000L : 200000L};
    nanosleep(&ts, NULL);
}

fy_status fy_comm_test(fy_comm *c, fy_comm_request *r, bool *done)
{
    *done = false;
    fy_status s = c->vt->test(c, r, done);
    return s == FY_OK ? FY_OK : fy_comm_fail(c, s);
}

fy_status fy_comm_wait(fy_comm *c, fy_comm_request *r)
{
    if (c->broken) {
        c->vt->abandon(c, r);
        return check_usable(c);
    }
    double deadline = fy_backend_now() + c->timeout;
    for (int round = 0;; round++) {
        bool done = false;
        FY_TRY(fy_comm_test(c, r, &done));
        if (done) return FY_OK;
        if (fy_backend_now() > deadline) {
            c->vt->abandon(c, r);
            return fy_comm_fail(c, fy_error(FY_ERR_DEVICE,
                                            "%s collective: rank %d of %d waited %.0f s and the other ranks did not "
                                            "answer (a rank died?); raise --collective-timeout if they are just slow",
                                            c->vt->name, c->rank, c->size, c->timeout));
        }
        pause_briefly(round);
    }
}

fy_status fy_comm_all_gather_start(fy_comm *c, const void *send, void *recv, size_t chunk, fy_comm_request **out)
{
    *out = NULL;
    FY_TRY(check_usable(c));
    fy_status s = c->vt->all_gather_start(c, send, recv, chunk, out);
    return s == FY_OK ? FY_OK : fy_comm_fail(c, s);
}

fy_status fy_comm_all_gather(fy_comm *c, const void *send, void *recv, size_t chunk)
{
    fy_comm_request *r = NULL;
    FY_TRY(fy_comm_all_gather_start(c, send, recv, chunk, &r));
    return fy_comm_wait(c, r);
}

fy_status fy_comm_broadcast(fy_comm *c, void *buf, size_t bytes, int root)
{
    FY_TRY(check_usable(c));
    if (root < 0 || root >= c->size)
        return fy_error(FY_ERR_INVALID, "broadcast: root %d is not a rank (0..%d)", root, c->size - 1);
    fy_comm_request *r = NULL;
    fy_status s = c->vt->broadcast_start(c, buf, bytes, root, &r);
    if (s != FY_OK) return fy_comm_fail(c, s);
    return fy_comm_wait(c, r);
}

fy_status fy_comm_barrier(fy_comm *c)
{
    FY_TRY(check_usable(c));
    fy_comm_request *r = NULL;
    fy_status s = c->vt->barrier_start(c, &r);
    if (s != FY_OK) return fy_comm_fail(c, s);
    return fy_comm_wait(c, r);
}

/* ---- The world ------------------------------------------------------------ */

static fy_comm *world;

bool fy_dist_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

fy_status fy_dist_init(double timeout_s)
{
    if (world) return FY_OK;
    fy_comm *c = NULL;
    if (fy_dist_launched()) FY_TRY(fy_comm_create_mpi(&c));
    else FY_TRY(fy_comm_create_single(&c));
    fy_comm_set_timeout(c, timeout_s);
    world = c;
    return FY_OK;
}

fy_comm *fy_dist_world(void)
{
    return world;
}

void fy_dist_finalize(bool success)
{
    if (world && !success) world->skip_finalize = true;
    fy_comm_free(world);
    world = NULL;
}
