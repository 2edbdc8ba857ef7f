/* NCCL on real GPUs, run by scripts/gpu-check: one rank per process (one
 * process = N 1 on a single GPU; under mpirun, rank r uses GPU r % count).
 * All-gather, broadcast and barrier on device buffers, checked on the host. */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/collectives.h"

static uint8_t pattern(int rank, size_t i)
{
    return (uint8_t)(rank * 37 + i * 11 + 1);
}

static int check(fy_comm *c, size_t chunk)
{
    int rank = fy_comm_rank(c), n = fy_comm_size(c);
    size_t total = chunk * (size_t)n;
    uint8_t *host = malloc(total + chunk + 1);
    void *send = NULL, *recv = NULL;
    int bad = 0;
    if (!host || cudaMalloc(&send, chunk + 1) != cudaSuccess || cudaMalloc(&recv, total + 1) != cudaSuccess) {
        fprintf(stderr, "nccl check: allocation failed\n");
        return 1;
    }
    for (size_t i = 0; i < chunk; i++) host[i] = pattern(rank, i);
    /* From pageable memory cudaMemcpy may return before its DMA lands, and
     * NCCL's stream does not wait for the default one: synchronise. */
    cudaMemcpy(send, host, chunk, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
    if (fy_comm_all_gather(c, send, recv, chunk) != FY_OK) {
        fprintf(stderr, "nccl all-gather of %zu bytes: %s\n", chunk, fy_error_message());
        bad = 1;
    }
    cudaMemcpy(host, recv, total, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < total && !bad; i++)
        if (host[i] != pattern((int)(i / chunk), i % chunk)) bad = fprintf(stderr, "all-gather byte %zu differs\n", i) > 0;
    for (size_t i = 0; i < chunk; i++) host[i] = rank == 0 ? pattern(7, i) : 0;
    cudaMemcpy(send, host, chunk, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
    if (!bad && fy_comm_broadcast(c, send, chunk, 0) != FY_OK) bad = fprintf(stderr, "broadcast: %s\n", fy_error_message()) > 0;
    cudaMemcpy(host, send, chunk, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < chunk && !bad; i++)
        if (host[i] != pattern(7, i)) bad = fprintf(stderr, "broadcast byte %zu differs\n", i) > 0;
    if (!bad && fy_comm_barrier(c) != FY_OK) bad = fprintf(stderr, "barrier: %s\n", fy_error_message()) > 0;
    cudaFree(send);
    cudaFree(recv);
    free(host);
    return bad;
}

int main(void)
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        fprintf(stderr, "nccl check: no GPU\n");
        return 77;
    }
    if (fy_dist_init(60.0) != FY_OK) {
        fprintf(stderr, "nccl check: %s\n", fy_error_message());
        return 1;
    }
    fy_comm *boot = fy_dist_world(), *c = NULL;
    if (fy_comm_create_nccl(boot, fy_comm_rank(boot) % devices, &c) != FY_OK) {
        fprintf(stderr, "nccl check: %s\n", fy_error_message());
        fy_dist_finalize(false);
        return 1;
    }
    static const size_t sizes[] = {1, 255, 4096, 1 << 20, (16 << 20) + 7};
    int bad = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0] && !bad; k++) bad = check(c, sizes[k]);
    if (!bad) printf("nccl: rank %d of %d on GPU %d: all-gather, broadcast, barrier ok\n", fy_comm_rank(c),
                     fy_comm_size(c), fy_comm_rank(boot) % devices);
    fy_comm_free(c);
    fy_dist_finalize(!bad);
    return bad;
}
