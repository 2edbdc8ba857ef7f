/* Run statistics, fed by the copy observer (copy thread), the pool observer
 * and the streamer's stall measurements, and printed after a run. */
#include <stdio.h>

#include "mem/engine_internal.h"

void fy_eng_stats_observe_copy(void *user, const char *label, size_t bytes, double t0, double t1)
{
    fy_engine *e = user;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.bytes_uploaded += bytes;
    e->stats.uploads++;
    e->stats.upload_time += t1 - t0;
    pthread_mutex_unlock(&e->stats_mu);
    fy_trace_span(e->trace, FY_TRACK_COPY, label ? label : "upload", "upload", t0, t1, bytes);
}

void fy_eng_stats_observe_disk(void *user, const char *label, uint64_t bytes, double t0, double t1)
{
    fy_engine *e = user;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.disk_bytes_read += bytes;
    e->stats.disk_reads++;
    e->stats.disk_read_time += t1 - t0;
    e->stats.disk_bandwidth = e->stats.disk_read_time > 0 ? (double)e->stats.disk_bytes_read / e->stats.disk_read_time : 0;
    pthread_mutex_unlock(&e->stats_mu);
    fy_trace_span(e->trace, FY_TRACK_DISK, label ? label : "read", "disk", t0, t1, bytes);
}

void fy_eng_stats_observe_pool(void *user, uint64_t used)
{
    fy_engine *e = user;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.peak_device = fy_pool_peak(e->pool);
    pthread_mutex_unlock(&e->stats_mu);
    fy_trace_counter(e->trace, "device memory", fy_backend_now(), used);
}

/* Waits shorter than this are bookkeeping, not stalls worth a trace event. */
#define STALL_TRACE_MIN 20e-6

void fy_eng_stats_stall(fy_engine *e, const char *name, double t0, double t1)
{
    double d = t1 - t0;
    if (d <= 0) return;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.stall_time += d;
    pthread_mutex_unlock(&e->stats_mu);
    if (d >= STALL_TRACE_MIN) {
        char label[80];
        snprintf(label, sizeof label, "stall %s", name);
        fy_trace_span(e->trace, FY_TRACK_COMPUTE, label, "stall", t0, t1, 0);
    }
}

/* The disk reader and the copy observer update the live stats from their
 * threads: callers get a copy taken under the lock. (The engine is not
 * const to the lock and the copy: both are the caller's view, not state.) */
const fy_engine_stats *fy_engine_stats_get(const fy_engine *e)
{
    fy_engine *m = (fy_engine *)e;
    fy_eng_stall_flush(m); /* the GPU's pending waits */
    pthread_mutex_lock(&m->stats_mu);
    m->stats_view = m->stats;
    pthread_mutex_unlock(&m->stats_mu);
    return &m->stats_view;
}

static double pct(double part, double whole)
{
    return whole > 0 ? 100.0 * part / whole : 0.0;
}

void fy_engine_stats_print(const fy_engine *e, FILE *f)
{
    fy_engine *m = (fy_engine *)e; /* the lock only */
    pthread_mutex_lock(&m->stats_mu);
    fy_engine_stats s = e->stats;
    pthread_mutex_unlock(&m->stats_mu);
    char a[32], b[32], c[32];
    fprintf(f, "offload: %s on %s\n", e->plan.fsdp ? "fsdp" : fy_offload_policy_name(e->plan.policy),
            fy_backend_name(e->backend));
    fprintf(f, "  run          %8.3f s\n", s.run_time);
    fprintf(f, "  compute      %8.3f s (%.1f%%)\n", s.compute_time, pct(s.compute_time, s.run_time));
    fprintf(f, "  stall        %8.3f s (%.1f%%)  compute waiting on weights\n", s.stall_time,
            pct(s.stall_time, s.run_time));
    double gbps = s.upload_time > 0 ? (double)s.bytes_uploaded / s.upload_time / 1e9 : 0.0;
    fprintf(f, "  uploaded     %s in %llu copies, %.3f s on the copy stream (%.2f GB/s)\n",
            fy_format_bytes(s.bytes_uploaded, a, sizeof a), (unsigned long long)s.uploads, s.upload_time, gbps);
    fprintf(f, "  device peak  %s (plan bound %s, budget %s)\n", fy_format_bytes(s.peak_device, a, sizeof a),
            fy_format_bytes(s.device_bound, b, sizeof b),
            s.device_budget ? fy_format_bytes(s.device_budget, c, sizeof c) : "unlimited");
    for (int k = 0; k < s.n_spill; k++)
        fprintf(f, "  device %-5d peak %s for %d resident blocks (budget %s)\n", s.spill[k].device,
                fy_format_bytes(s.spill[k].peak, a, sizeof a), s.spill[k].blocks,
                fy_format_bytes(s.spill[k].budget, b, sizeof b));
    fprintf(f, "  host         %s held (%s pinned), %s read from the mapped source\n",
            fy_format_bytes(s.host_bytes, a, sizeof a), fy_format_bytes(s.pinned_bytes, b, sizeof b),
            fy_format_bytes(s.mapped_bytes, c, sizeof c));
    if (s.host_budget)
        fprintf(f, "  host budget  %s: the plan holds %s\n", fy_format_bytes(s.host_budget, a, sizeof a),
                fy_format_bytes(s.host_bound, b, sizeof b));
    if (s.disk_groups) {
        fprintf(f, "  disk         %d blocks on disk, staging %s in %d slots; read %s in %llu reads, %.3f s "
                   "(%.2f GB/s, %s, %s)\n",
                s.disk_groups, fy_format_bytes(s.disk_staging_bytes, a, sizeof a), s.disk_slots,
                fy_format_bytes(s.disk_bytes_read, b, sizeof b), (unsigned long long)s.disk_reads, s.disk_read_time,
                s.disk_bandwidth / 1e9, s.disk_direct ? "O_DIRECT" : "buffered, pages dropped",
                s.disk_uring ? "io_uring" : "pread");
        fprintf(f, "  disk stall   %8.3f s (%.1f%%)  compute waiting on disk reads\n", s.disk_stall_time,
                pct(s.disk_stall_time, s.run_time));
    }
    if (s.switches)
        fprintf(f, "  switch       %d hand-over(s), %d blocks prefetched before: compute waited %.3f ms for the next "
                   "expert's first block; %s of device memory given back\n", s.switches, s.switch_prefetched,
                s.switch_stall_time * 1e3, fy_format_bytes(s.switch_freed_bytes, a, sizeof a));
    if (e->plan.fsdp)
        fprintf(f, "  fsdp         rank %d of %d holds %s of %s of blocks; %s all-gathered\n", s.rank, s.ranks,
                fy_format_bytes(s.shard_bytes, a, sizeof a), fy_format_bytes(s.sharded_bytes, b, sizeof b),
                fy_format_bytes(s.bytes_gathered, c, sizeof c));
    if (s.predicted_step_s > 0 || s.predicted_initial_step_s > 0)
        fprintf(f, "  planner      budget %s, copy %.2f GB/s; step predicted %.3f s (initial %.3f s), measured %.3f s\n",
                s.vram_budget ? fy_format_bytes(s.vram_budget, a, sizeof a) : "unlimited", s.copy_bandwidth / 1e9,
                s.predicted_step_s, s.predicted_initial_step_s, s.measured_step_s);
    else if (s.measured_step_s > 0)
        fprintf(f, "  step         %8.3f s measured (median)\n", s.measured_step_s);
}
