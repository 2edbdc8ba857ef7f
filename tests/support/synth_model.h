/* A synthetic model for the offload engine's tests and benchmark: one
 * "embed" matrix (a SMALL group), then N blocks of x -> relu(x W_i + b_i),
 * all f32, D x D, written to a safetensors file in a fresh temp folder and
 * read back through the mapping, so the weights are borrowed mmap views as
 * a real model's are. Deterministic: the same config gives the same bytes. */
#ifndef FERRY_TESTS_SUPPORT_SYNTH_MODEL_H
#define FERRY_TESTS_SUPPORT_SYNTH_MODEL_H

#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"

typedef struct fyt_synth_config {
    int blocks;
    int dim;   /* D */
    int rows;  /* activations are rows x D */
    bool bias; /* a second tensor per block */
} fyt_synth_config;

typedef struct fyt_synth fyt_synth;

fy_status fyt_synth_create(const fyt_synth_config *cfg, fyt_synth **out);
/* Removes the temp folder. */
void fyt_synth_free(fyt_synth *s);
/* Declares component "transformer": group "embed" (SMALL) then "blocks.i". */
fy_status fyt_synth_declare(fyt_synth *s, fy_engine *e);
/* Device bytes the forward allocates (two rows x D buffers). */
uint64_t fyt_synth_activation_bytes(const fyt_synth *s);
/* Bytes of one block as laid out on the device. */
uint64_t fyt_synth_block_bytes(const fyt_synth *s);
/* steps forward passes, each feeding the next; out gets rows x D floats. */
fy_status fyt_synth_run(fyt_synth *s, fy_engine *e, int steps, float *out);
/* One whole run under options o: create an engine, declare, prepare, run
 * `steps` forward passes, finish. out (rows x D, calloc'ed: free it) and the
 * stats and plan are filled as far as the run got; status says how far. */
typedef struct fyt_synth_result {
    fy_status status;
    float *out;
    fy_engine_stats stats;
    fy_plan plan;
    double wall;   /* seconds of the forward passes */
} fyt_synth_result;
fyt_synth_result fyt_synth_run_engine(fyt_synth *s, const fy_run_options *o, int steps);
/* The same math on the host weights, without any engine (one block's time). */
void fyt_synth_block_host(const fyt_synth *s, int block, const float *in, float *out);
/* The deterministic input (rows x D). */
const float *fyt_synth_input(const fyt_synth *s);
const fyt_synth_config *fyt_synth_cfg(const fyt_synth *s);
/* The safetensors file the weights are mapped from. */
const char *fyt_synth_path(const fyt_synth *s);

#endif
