/* MPI_COMM_WORLD as a communicator: non-blocking collectives polled against
 * a deadline (MPI's blocking ones would wait forever on a dead rank), with
 * MPI_ERRORS_RETURN so a failure is a status, never MPI_Abort. */
#include <stdint.h>
#include <stdlib.h>

#include "dist/comm_internal.h"

#ifdef FERRY_HAVE_MPI
#include <limits.h>
#include <mpi.h>

/* Chunks are counted in 256-byte units when they can be, so blocks beyond
 * 2 GiB per rank still fit MPI's int counts. */
#define UNIT_BYTES 256

typedef struct mpi_comm {
    fy_comm base;
    MPI_Datatype unit;
    bool initialized_here;
} mpi_comm;

struct fy_comm_request {
    MPI_Request req;
};

static fy_status mpi_failed(const char *what, int rc)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    text[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
    return fy_error(FY_ERR_DEVICE, "MPI %s failed: %s (a rank died?)", what, len ? text : "unknown error");
}

static fy_status count_of(const mpi_comm *m, size_t bytes, int *count, MPI_Datatype *type)
{
    if (bytes % UNIT_BYTES == 0 && bytes / UNIT_BYTES <= INT_MAX) {
        *count = (int)(bytes / UNIT_BYTES);
        *type = m->unit;
        return FY_OK;
    }
    if (bytes <= INT_MAX) {
        *count = (int)bytes;
        *type = MPI_BYTE;
        return FY_OK;
    }
    return fy_error(FY_ERR_UNSUPPORTED, "MPI: %zu bytes per rank is too large unless a multiple of %d", bytes,
                    UNIT_BYTES);
}

static fy_status new_request(fy_comm_request **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? FY_OK : fy_error(FY_ERR_NOMEM, "MPI: out of memory for a request");
}

static fy_status mpi_all_gather_start(fy_comm *c, const void *send, void *recv, size_t chunk, fy_comm_request **out)
{
    mpi_comm *m = (mpi_comm *)c;
    int count = 0;
    MPI_Datatype type = MPI_BYTE;
    FY_TRY(count_of(m, chunk, &count, &type));
    FY_TRY(new_request(out));
    /* In place when the caller already put its chunk at its own slot. */
    const void *src = send == (const char *)recv + (size_t)c->rank * chunk ? MPI_IN_PLACE : send;
    int rc = MPI_Iallgather(src, count, type, recv, count, type, MPI_COMM_WORLD, &(*out)->req);
    if (rc != MPI_SUCCESS) {
        free(*out);
        *out = NULL;
        return mpi_failed("all-gather", rc);
    }
    return FY_OK;
}

static fy_status mpi_broadcast_start(fy_comm *c, void *buf, size_t bytes, int root, fy_comm_request **out)
{
    mpi_comm *m = (mpi_comm *)c;
    int count = 0;
    MPI_Datatype type = MPI_BYTE;
    FY_TRY(count_of(m, bytes, &count, &type));
    FY_TRY(new_request(out));
    int rc = MPI_Ibcast(buf, count, type, root, MPI_COMM_WORLD, &(*out)->req);
    if (rc != MPI_SUCCESS) {
        free(*out);
        *out = NULL;
        return mpi_failed("broadcast", rc);
    }
    return FY_OK;
}

static fy_status mpi_barrier_start(fy_comm *c, fy_comm_request **out)
{
    (void)c;
    FY_TRY(new_request(out));
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &(*out)->req);
    if (rc != MPI_SUCCESS) {
        free(*out);
        *out = NULL;
        return mpi_failed("barrier", rc);
    }
    return FY_OK;
}

static fy_status mpi_test(fy_comm *c, fy_comm_request *r, bool *done)
{
    (void)c;
    int flag = 0;
    int rc = MPI_Test(&r->req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        free(r); /* MPI has released the request with the error */
        return mpi_failed("collective", rc);
    }
    *done = flag != 0;
    if (*done) free(r);
    return FY_OK;
}

static void mpi_abandon(fy_comm *c, fy_comm_request *r)
{
    /* A collective cannot be cancelled and MPI may still write into its
     * buffers: the request (and they) are left alone; the process is about
     * to exit with the error. */
    (void)c, (void)r;
}

static void mpi_destroy(fy_comm *c)
{
    mpi_comm *m = (mpi_comm *)c;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        MPI_Type_free(&m->unit);
        /* MPI_Finalize synchronises with every rank: after a failure it
         * could wait for a dead one forever, so only a healthy job finalizes. */
        if (m->initialized_here && !c->broken && !c->skip_finalize) MPI_Finalize();
    }
    free(m);
}

static const fy_comm_vtable mpi_vt = {
    .name = "mpi",
    .device_buffers = false,
    .all_gather_start = mpi_all_gather_start,
    .broadcast_start = mpi_broadcast_start,
    .barrier_start = mpi_barrier_start,
    .test = mpi_test,
    .abandon = mpi_abandon,
    .destroy = mpi_destroy,
};

fy_status fy_comm_create_mpi(fy_comm **out)
{
    *out = NULL;
    mpi_comm *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "communicator: out of memory");
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            free(m);
            return fy_error(FY_ERR_DEVICE, "MPI_Init failed (is this process started by mpirun?)");
        }
        m->initialized_here = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Type_contiguous(UNIT_BYTES, MPI_BYTE, &m->unit);
    MPI_Type_commit(&m->unit);
    fy_comm_init_base(&m->base, &mpi_vt, rank, size);
    *out = &m->base;
    return FY_OK;
}

#else

fy_status fy_comm_create_mpi(fy_comm **out)
{
    *out = NULL;
    return fy_error(FY_ERR_UNSUPPORTED,
                    "this ferry was built without MPI, so it cannot run under mpirun (install libopenmpi-dev and "
                    "rebuild)");
}

#endif
