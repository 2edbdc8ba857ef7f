/* The components `ferry verify` knows, in the order they run. A component
 * whose run is NULL is known by name but not implemented in this build yet;
 * adding one is adding its function here. */
#include "pipeline/verify.h"

#include "pipeline/verify_pipeline.h"
#include "pipeline/verify_scheduler.h"
#include "pipeline/verify_text_encoder.h"
#include "pipeline/verify_transformer.h"
#include "pipeline/verify_vae.h"

static const fy_verifier registry[] = {
    {"tokenizer", "tokenizer.safetensors", fy_verify_tokenizer},
    {"text_encoder", "text_encoder.safetensors", fy_verify_text_encoder},
    {"transformer", "transformer.safetensors", fy_verify_transformer},
    {"vae", "vae.safetensors", fy_verify_vae},
    {"scheduler", NULL, fy_verify_scheduler}, /* opens scheduler_*.safetensors itself */
    {"pipeline", "pipeline.safetensors", fy_verify_pipeline},
};

const fy_verifier *fy_verifiers(size_t *count)
{
    if (count) *count = sizeof registry / sizeof registry[0];
    return registry;
}
