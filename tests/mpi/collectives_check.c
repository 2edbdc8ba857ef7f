/* The collectives across real ranks: run by tests/cli/fsdp.sh under
 * `mpirun -np 2|3`. Without arguments: all-gather (odd sizes, in place,
 * non-blocking), broadcast from every root and barriers, checked on every
 * rank; exit 0 when all match. With "dead": rank 1 exits at once and the
 * others must get a timeout error from a barrier (exit 0 when they do). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/collectives.h"

static int failures;

#define CHECK(cond, ...)                                     \
    do {                                                     \
        if (!(cond)) {                                       \
            fprintf(stderr, "rank %d: ", rank);              \
            fprintf(stderr, __VA_ARGS__);                    \
            fprintf(stderr, " (%s)\n", fy_error_message());  \
            failures++;                                      \
        }                                                    \
    } while (0)

static uint8_t pattern(int rank, size_t i)
{
    return (uint8_t)(rank * 37 + i * 11 + 1);
}

static void check_all_gather(fy_comm *c, size_t chunk, bool in_place, bool nonblocking)
{
    int rank = fy_comm_rank(c), n = fy_comm_size(c);
    uint8_t *send = malloc(chunk ? chunk : 1), *recv = malloc(chunk * (size_t)n + 1);
    memset(recv, 0xee, chunk * (size_t)n + 1);
    uint8_t *mine = in_place ? recv + (size_t)rank * chunk : send;
    for (size_t i = 0; i < chunk; i++) mine[i] = pattern(rank, i);
    fy_status s;
    if (nonblocking) {
        fy_comm_request *r = NULL;
        s = fy_comm_all_gather_start(c, mine, recv, chunk, &r);
        bool done = false;
        while (s == FY_OK && !done) s = fy_comm_test(c, r, &done);
    } else {
        s = fy_comm_all_gather(c, mine, recv, chunk);
    }
    CHECK(s == FY_OK, "all-gather of %zu bytes failed", chunk);
    for (int r = 0; r < n && s == FY_OK; r++)
        for (size_t i = 0; i < chunk; i++)
            if (recv[(size_t)r * chunk + i] != pattern(r, i)) {
                CHECK(false, "all-gather of %zu bytes: byte %zu from rank %d differs", chunk, i, r);
                r = n;
                break;
            }
    CHECK(recv[chunk * (size_t)n] == 0xee, "all-gather of %zu bytes wrote past the end", chunk);
    free(send);
    free(recv);
}

static void check_broadcast(fy_comm *c, size_t bytes, int root)
{
    int rank = fy_comm_rank(c);
    uint8_t *buf = malloc(bytes ? bytes : 1);
    for (size_t i = 0; i < bytes; i++) buf[i] = rank == root ? pattern(root, i) : 0;
    CHECK(fy_comm_broadcast(c, buf, bytes, root) == FY_OK, "broadcast from %d failed", root);
    for (size_t i = 0; i < bytes; i++)
        if (buf[i] != pattern(root, i)) {
            CHECK(false, "broadcast of %zu bytes from %d: byte %zu differs", bytes, root, i);
            break;
        }
    free(buf);
}

static int dead_rank(fy_comm *c)
{
    int rank = fy_comm_rank(c);
    if (rank == 1) _exit(3);
    fy_status s = fy_comm_barrier(c);
    CHECK(s == FY_ERR_DEVICE, "a barrier with a dead rank returned %d", (int)s);
    CHECK(strstr(fy_error_message(), "did not answer") != NULL, "no clear message");
    fprintf(stderr, "rank %d: expected failure: %s\n", rank, fy_error_message());
    CHECK(fy_comm_barrier(c) != FY_OK, "a broken communicator worked again");
    return failures;
}

int main(int argc, char **argv)
{
    bool dead = argc > 1 && strcmp(argv[1], "dead") == 0;
    int rank = 0;
    if (fy_dist_init(dead ? 2.0 : 30.0) != FY_OK) {
        fprintf(stderr, "init failed: %s\n", fy_error_message());
        return 1;
    }
    fy_comm *c = fy_dist_world();
    rank = fy_comm_rank(c);
    if (dead) {
        int f = dead_rank(c);
        fy_dist_finalize(false);
        _exit(f ? 1 : 0); /* no MPI_Finalize with a dead peer */
    }
    static const size_t sizes[] = {0, 1, 7, 256, 1000, 4096, 65536 + 3, 1 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        check_all_gather(c, sizes[k], false, false);
        check_all_gather(c, sizes[k], true, false);
        check_all_gather(c, sizes[k], false, true);
        for (int root = 0; root < fy_comm_size(c); root++) check_broadcast(c, sizes[k], root);
        CHECK(fy_comm_barrier(c) == FY_OK, "barrier failed");
    }
    if (!failures) printf("collectives: rank %d of %d (%s): ok\n", rank, fy_comm_size(c), fy_comm_name(c));
    fy_dist_finalize(failures == 0);
    return failures ? 1 : 0;
}
