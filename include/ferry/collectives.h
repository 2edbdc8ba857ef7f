/* Collectives: all-gather, broadcast and barrier over a group of ranks, on
 * existing engines (MPI between processes and machines, NCCL between GPUs),
 * for FSDP-style sharded inference (--use-fsdp-inference).
 *
 * Implementations:
 *   single  one rank; every collective is a copy or nothing. Always built.
 *   mpi     OpenMPI, host buffers; MPI_COMM_WORLD of a job started with
 *           `mpirun -np N ferry ...`. Built when CMake finds MPI.
 *   nccl    NCCL, device buffers on its own communication stream (it does
 *           not wait for other streams: the buffers must be ready, e.g.
 *           after a device synchronisation, when a collective starts); the
 *           ncclUniqueId is broadcast over an MPI (or single) communicator.
 *           Built with CUDA when nccl.h and libnccl are found.
 *
 * Every collective has a deadline (fy_comm_set_timeout, --collective-timeout,
 * default 300 s): a rank that died or hangs turns into FY_ERR_DEVICE "rank R
 * did not answer within T s (a rank died?)" on the others instead of a hang.
 * MPI runs with MPI_ERRORS_RETURN, so a dead peer is an error, never an abort
 * inside the library. After a failed collective the communicator is broken:
 * later calls fail at once, and fy_dist_finalize skips MPI_Finalize (which can
 * hang on a dead peer), so the process can exit with its message.
 *
 * Collectives must be issued in the same order on every rank (as MPI and NCCL
 * require). all_gather takes equal chunks: rank r's `chunk` bytes land at
 * recv + r * chunk on every rank. */
#ifndef FERRY_COLLECTIVES_H
#define FERRY_COLLECTIVES_H

#include <stdbool.h>
#include <stddef.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FY_COMM_DEFAULT_TIMEOUT 300.0

typedef struct fy_comm fy_comm;
/* A non-blocking all-gather in flight (prefetch). */
typedef struct fy_comm_request fy_comm_request;

fy_status fy_comm_create_single(fy_comm **out);
/* MPI_COMM_WORLD (MPI_Init on first use). FY_ERR_UNSUPPORTED in builds without MPI. */
fy_status fy_comm_create_mpi(fy_comm **out);
/* NCCL over `bootstrap`'s ranks, on CUDA device `device`: rank 0 makes the
 * ncclUniqueId and broadcasts it. Buffers passed to this communicator are
 * device pointers. FY_ERR_UNSUPPORTED in builds without NCCL. */
fy_status fy_comm_create_nccl(fy_comm *bootstrap, int device, fy_comm **out);
void fy_comm_free(fy_comm *c);

int fy_comm_rank(const fy_comm *c);
int fy_comm_size(const fy_comm *c);
const char *fy_comm_name(const fy_comm *c); /* "single", "mpi", "nccl" */
/* true when buffers are device pointers (nccl). */
bool fy_comm_device_buffers(const fy_comm *c);
/* Seconds a collective may wait for the other ranks (> 0). */
void fy_comm_set_timeout(fy_comm *c, double seconds);
double fy_comm_timeout(const fy_comm *c);

fy_status fy_comm_all_gather(fy_comm *c, const void *send, void *recv, size_t chunk);
fy_status fy_comm_broadcast(fy_comm *c, void *buf, size_t bytes, int root);
fy_status fy_comm_barrier(fy_comm *c);

/* Non-blocking all-gather: start it, then test or wait. test and wait free
 * the request once it has completed (*done, or FY_OK from wait) or failed;
 * send and recv must stay valid until then. */
fy_status fy_comm_all_gather_start(fy_comm *c, const void *send, void *recv, size_t chunk, fy_comm_request **out);
fy_status fy_comm_test(fy_comm *c, fy_comm_request *r, bool *done);
fy_status fy_comm_wait(fy_comm *c, fy_comm_request *r);

/* ---- The process's communicator ------------------------------------------
 * `ferry` without mpirun is one rank; under mpirun (OMPI_COMM_WORLD_SIZE or
 * PMIX_RANK in the environment) it is MPI_COMM_WORLD. */

/* The environment says this process was started by mpirun. */
bool fy_dist_launched(void);
/* Create the world communicator: mpi when launched by mpirun (an error when
 * the build has no MPI), single otherwise. timeout_s <= 0: the default. */
fy_status fy_dist_init(double timeout_s);
/* The world communicator, or NULL before fy_dist_init. */
fy_comm *fy_dist_world(void);
/* Tear down. MPI_Finalize waits for every rank, so it runs only when this
 * one succeeded and no collective failed; otherwise the process should just
 * exit non-zero (mpirun then ends the job). */
void fy_dist_finalize(bool success);

#ifdef __cplusplus
}
#endif
#endif
