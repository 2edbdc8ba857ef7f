/* The communicator implementation interface, shared by the files of src/dist. */
#ifndef FERRY_DIST_COMM_INTERNAL_H
#define FERRY_DIST_COMM_INTERNAL_H

#include "ferry/collectives.h"

typedef struct fy_comm_vtable {
    const char *name;
    bool device_buffers;
    fy_status (*all_gather_start)(fy_comm *c, const void *send, void *recv, size_t chunk, fy_comm_request **out);
    fy_status (*broadcast_start)(fy_comm *c, void *buf, size_t bytes, int root, fy_comm_request **out);
    fy_status (*barrier_start)(fy_comm *c, fy_comm_request **out);
    /* *done once complete; the request is freed then (or on failure). */
    fy_status (*test)(fy_comm *c, fy_comm_request *r, bool *done);
    /* Give up on a request after a timeout (the peer is gone). */
    void (*abandon)(fy_comm *c, fy_comm_request *r);
    void (*destroy)(fy_comm *c);
} fy_comm_vtable;

/* Every implementation embeds this header first. */
struct fy_comm {
    const fy_comm_vtable *vt;
    int rank, size;
    double timeout;
    bool broken; /* a collective failed or timed out: later ones fail at once */
    char failure[512]; /* the first failure's message, repeated by later calls */
    bool skip_finalize; /* the process failed: do not wait for the others at exit */
};

void fy_comm_init_base(fy_comm *c, const fy_comm_vtable *vt, int rank, int size);
/* Mark the communicator broken and return the error (the message is set). */
fy_status fy_comm_fail(fy_comm *c, fy_status s);

#endif
