/* `ferry verify`: run ferry's components on a golden fixture folder and
 * compare with the reference tensors, one printed line per comparison.
 *
 * Each component registers one fy_verifier in verify_registry.c: its name
 * (as given to --component), the fixture file it reads, and the function
 * that runs it. Comparisons use the fixtures README's measure, the relative
 * error max|ours - ref| / max|ref|. */
#ifndef FERRY_VERIFY_H
#define FERRY_VERIFY_H

#include <stdio.h>
#include "ferry/model.h"
#include "ferry/options.h"
#include "ferry/safetensors.h"
#include "ferry/tensor.h"

/* The tolerance every comparison gets with --storage-dtype bf16|f16. */
#define FY_VERIFY_NARROW_TOLERANCE 2e-2

typedef struct fy_verify_ctx {
    const fy_model *model;          /* the model folder under test */
    const char *fixture_dir;
    const fy_run_options *options;  /* device and memory options, as for generate */
    FILE *out;                      /* where result lines go (stdout) */
    int compared;
    int failed;
    double weights_tolerance;       /* GGUF transformer weights: the floor for what they produce */
    double floor;                   /* the floor of the component running now */
} fy_verify_ctx;

/* Relative error of ours against ref (same shape; any float dtypes, host). */
fy_status fy_relative_error(const fy_tensor *ours, const fy_tensor *ref, double *out);

/* Compare two float tensors, print "name  rel-err  tol  pass|FAIL", count it.
 * Returns FY_OK even when the comparison fails (the count records it); an
 * error status only when they cannot be compared (shape mismatch is a FAIL line). */
fy_status fy_verify_compare(fy_verify_ctx *ctx, const char *name, const fy_tensor *ours,
                            const fy_tensor *ref, double tolerance);
/* Exact comparison of integer tensors (token ids, masks, timesteps); values given as int64. */
fy_status fy_verify_compare_ids(fy_verify_ctx *ctx, const char *name, const int64_t *ours,
                                size_t n_ours, const fy_tensor *ref);

typedef fy_status (*fy_verify_fn)(fy_verify_ctx *ctx, const fy_st_file *fixture);

typedef struct fy_verifier {
    const char *component;     /* "scheduler", "transformer", ... */
    const char *fixture_file;  /* "transformer.safetensors"; NULL if the fn opens its own files */
    fy_verify_fn run;          /* NULL: known component, not implemented in this build yet */
    /* The fixture file whose absence means the fixture set does not cover
     * this component: a run of every component skips it, saying so; naming
     * it in --component is an error. NULL: fixture_file. */
    const char *covered_by;
} fy_verifier;

/* The registry, in the order components run. */
const fy_verifier *fy_verifiers(size_t *count);

/* Run the named components (comma list; NULL = every implemented one).
 * Returns FY_OK only if at least one comparison ran and all passed. */
fy_status fy_verify_run(const char *model_dir, const char *fixture_dir, const char *components,
                        const fy_run_options *options, FILE *out);

#endif
