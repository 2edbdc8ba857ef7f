/* `ferry verify` for a FluxPipeline folder (tests/fixtures/flux-tiny): the
 * Flux components' verifiers and their registry, used in place of Wan's when
 * the model folder's class is FluxPipeline. */
#ifndef FERRY_VERIFY_VERIFY_FLUX_H
#define FERRY_VERIFY_VERIFY_FLUX_H

#include <stdbool.h>
#include "ferry/model.h"
#include "verify/verify.h"

bool fy_verify_is_flux(const fy_model *m);
/* A FLUX.1-schnell-shaped folder (its transformer has no guidance
 * embeddings): the *_schnell fixture files apply. */
bool fy_flux_is_schnell(const fy_model *m);
const fy_verifier *fy_flux_verifiers(size_t *count);

/* Shared by the Flux verifiers: the fixture's __metadata__ "info" as JSON. */
struct cJSON;
fy_status fy_flux_fixture_info(const fy_st_file *f, struct cJSON **out);
/* Runs fn on fixture_dir/file (FY_OK and a note when the file is absent). */
fy_status fy_flux_open_fixture(fy_verify_ctx *ctx, const char *file, fy_st_file **out);

fy_status fy_verify_flux_tokenizer(fy_verify_ctx *ctx, const fy_st_file *fixture);
fy_status fy_verify_flux_tokenizer_2(fy_verify_ctx *ctx, const fy_st_file *fixture);
fy_status fy_verify_flux_text_encoder(fy_verify_ctx *ctx, const fy_st_file *fixture);
fy_status fy_verify_flux_text_encoder_2(fy_verify_ctx *ctx, const fy_st_file *fixture);
fy_status fy_verify_flux_transformer(fy_verify_ctx *ctx, const fy_st_file *fixture);
fy_status fy_verify_flux_vae(fy_verify_ctx *ctx, const fy_st_file *fixture);
fy_status fy_verify_flux_scheduler(fy_verify_ctx *ctx, const fy_st_file *fixture);
fy_status fy_verify_flux_pipeline(fy_verify_ctx *ctx, const fy_st_file *fixture);

#endif
