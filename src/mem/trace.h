/* A timeline in memory, written as Chrome Trace Event JSON (opens in
 * Perfetto and chrome://tracing). Thread-safe: the copy engine reports its
 * spans from its own thread. */
#ifndef FERRY_MEM_TRACE_H
#define FERRY_MEM_TRACE_H

#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"

typedef struct fy_trace fy_trace;

/* Tracks, one per stream, and the disk tier's reader. */
enum { FY_TRACK_COMPUTE = 1, FY_TRACK_COPY = 2, FY_TRACK_DISK = 3 };

/* origin: the clock value (fy_backend_now) shown as time 0. */
fy_status fy_trace_create(double origin, fy_trace **out);
void fy_trace_free(fy_trace *t);
/* A complete ("X") event from t0 to t1 (seconds). bytes 0 = none. */
void fy_trace_span(fy_trace *t, int track, const char *name, const char *cat, double t0, double t1,
                   uint64_t bytes);
/* A counter ("C") sample. */
void fy_trace_counter(fy_trace *t, const char *name, double at, uint64_t value);
/* Temp file + rename: a failed write leaves no partial file. path must be
 * absent or a regular file (a FIFO, device, link or folder is refused). */
fy_status fy_trace_write(fy_trace *t, const char *path);
/* Several timelines in one file, timeline i as Chrome-trace process i + 1
 * named names[i], all on the earliest origin's clock. */
fy_status fy_trace_write_many(fy_trace *const *traces, const char *const *names, int n, const char *path);

/* A run with several engines (--device-map, --*-cpu-offload) writes one
 * trace of them all: each engine's own --trace write would replace the
 * others'. Each engine's timeline is process i + 1, named names[i]. */
#define FY_TRACE_MAX_TIMELINES 16
fy_status fy_engines_write_trace(fy_engine *const *engines, const char *const *names, int n, const char *path);

#endif
