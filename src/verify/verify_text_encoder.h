/* `ferry verify --component tokenizer,text_encoder`. */
#ifndef FERRY_VERIFY_VERIFY_TEXT_ENCODER_H
#define FERRY_VERIFY_VERIFY_TEXT_ENCODER_H

#include "ferry/safetensors.h"
#include "verify/verify.h"

/* tokenizer.safetensors: every case of __metadata__ info "cases" tokenized
 * by the model's tokenizer/ and its ids compared exactly; then
 * text_encoder.safetensors' info "texts" at its "max_length" (padding,
 * truncation) against its input_ids and attention_mask when that file exists. */
fy_status fy_verify_tokenizer(fy_verify_ctx *ctx, const fy_st_file *fixture);

/* text_encoder.safetensors: the model's text_encoder on the fixture's ids and
 * mask under ctx->options' device and plan (the CPU with
 * --text-encoder-cpu-offload); hidden_states.0..N and last_hidden_state at
 * 1e-5. Then, when pipeline.safetensors exists, the pipeline's prompt and
 * negative-prompt ids, masks and zero-padded embeddings. */
fy_status fy_verify_text_encoder(fy_verify_ctx *ctx, const fy_st_file *fixture);

#endif
