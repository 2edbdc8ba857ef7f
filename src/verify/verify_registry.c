/* The components `ferry verify` knows, in the order they run. A component
 * whose run is NULL is known by name but not implemented in this build yet;
 * adding one is adding its function here. */
#include "verify/verify.h"

#include "verify/verify_image.h"
#include "verify/verify_pipeline.h"
#include "verify/verify_scheduler.h"
#include "verify/verify_text_encoder.h"
#include "verify/verify_transformer.h"
#include "verify/verify_vae.h"

static const fy_verifier registry[] = {
    {"tokenizer", "tokenizer.safetensors", fy_verify_tokenizer, NULL},
    {"text_encoder", "text_encoder.safetensors", fy_verify_text_encoder, NULL},
    {"image_processor", "image_preprocess.safetensors", fy_verify_image_processor, NULL},
    {"image_encoder", "image_encoder.safetensors", fy_verify_image_encoder, NULL},
    {"condition", "condition.safetensors", fy_verify_condition, NULL},
    {"transformer", "transformer.safetensors", fy_verify_transformer, NULL},
    {"transformer_2", "transformer_2.safetensors", fy_verify_transformer_2, NULL},
    {"vae", "vae.safetensors", fy_verify_vae, NULL},
    /* opens scheduler_*.safetensors itself */
    {"scheduler", NULL, fy_verify_scheduler, "scheduler_unipc.safetensors"},
    {"pipeline", "pipeline.safetensors", fy_verify_pipeline, NULL},
};

const fy_verifier *fy_verifiers(size_t *count)
{
    if (count) *count = sizeof registry / sizeof registry[0];
    return registry;
}
