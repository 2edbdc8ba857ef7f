/* The UMT5 text encoder (transformers' UMT5EncoderModel), as Wan uses it to
 * embed prompts, running on the offload engine.
 *
 *   x = shared[ids]
 *   per block i:
 *     h = rms_norm(x) * ln0;  q, k, v = h Wq^T, h Wk^T, h Wv^T
 *     x += softmax(q k^T + bias_i[bucket(k - q)] + mask) v Wo^T   (no 1/sqrt(d))
 *     h = rms_norm(x) * ln1;  x += (gelu_tanh(h Wi0^T) * (h Wi1^T)) Wo^T
 *   last_hidden_state = rms_norm(x) * final
 *
 * Unlike T5, every block has its own relative_attention_bias table
 * [num_buckets, num_heads] (bidirectional buckets). Padded positions are
 * computed too: the mask only removes padded keys.
 *
 * Every dimension comes from the component's config.json. The weights are
 * declared to the engine as component "text_encoder": a SMALL group
 * "embed_tokens", one BLOCK group per encoder block, a SMALL group
 * "final_layer_norm"; every offload plan applies. Weights may be f32, bf16 or
 * f16 (bf16/f16 linear weights are converted block by block as they are used).
 * Compute goes through the backend's op table (ferry/ops.h) on the engine's
 * device, whichever it is (cpu, emu or cuda). */
#ifndef FERRY_UMT5_H
#define FERRY_UMT5_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"
#include "ferry/model.h"
#include "ferry/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_umt5_act {
    FY_UMT5_GELU_TANH = 0, /* "gelu_new", "gelu_pytorch_tanh" */
    FY_UMT5_GELU,          /* exact erf GELU */
    FY_UMT5_RELU
} fy_umt5_act;

typedef struct fy_umt5_config {
    int64_t vocab_size, d_model, d_kv, d_ff, num_heads, num_layers;
    int64_t num_buckets, max_distance;
    double eps;
    bool gated;      /* "gated-gelu": wi_0 / wi_1; otherwise a single wi */
    fy_umt5_act act;
} fy_umt5_config;

/* Seconds spent by category over every forward so far (for benchmarks). */
typedef struct fy_umt5_profile {
    double linear;     /* projections and feed-forward GEMMs (bf16/f16 conversion included) */
    double attention;  /* position bias + attention */
    double other;      /* embedding, norms, activations, residual adds, copies */
    double total;      /* wall time of the forwards, weight acquires included */
    int64_t tokens;    /* batch x length, summed over forwards */
} fy_umt5_profile;

typedef struct fy_umt5 fy_umt5;

/* Reads the config, checks every weight's presence and shape (a clear error
 * naming the file and the tensor otherwise) and declares the groups into e.
 * The model borrows c and e: both must outlive it. */
fy_status fy_umt5_load(const fy_component *c, fy_engine *e, fy_umt5 **out);
void fy_umt5_free(fy_umt5 *m);
const fy_umt5_config *fy_umt5_get_config(const fy_umt5 *m);
/* Compute threads (0 = one per core, the default); before the first forward. */
fy_status fy_umt5_set_threads(fy_umt5 *m, int threads);
const fy_umt5_profile *fy_umt5_get_profile(const fy_umt5 *m);

/* Device bytes a forward over batch x len tokens allocates at most. */
uint64_t fy_umt5_activation_bytes(const fy_umt5 *m, int64_t batch, int64_t len);

/* ids, mask: host [batch, len] (mask 1 = token, 0 = padding). last: host
 * [batch, len, d_model] f32, may be NULL. hidden: NULL, or num_layers + 1
 * host pointers (each NULL or [batch, len, d_model] f32) receiving
 * transformers' output_hidden_states: hidden[0] the embeddings, hidden[k]
 * the output of block k-1, hidden[num_layers] the last hidden state. */
fy_status fy_umt5_forward(fy_umt5 *m, const int64_t *ids, const int64_t *mask, int64_t batch,
                          int64_t len, float *last, float *const *hidden);

/* WanPipeline's prompt embeddings: tokenize each text (max_len tokens, </s>
 * appended, truncation with a warning naming the dropped token count,
 * padding), encode the batch, and zero every row past a text's real token
 * count. labels name the texts in that warning ("negative prompt"; NULL:
 * "text i"). embeds: host [n, max_len, d_model]; ids and mask: host
 * [n, max_len] or NULL; n_real: n counts or NULL. */
fy_status fy_umt5_encode_prompts(fy_umt5 *m, const fy_tokenizer *tok, const char *const *texts,
                                 const char *const *labels, int n, int max_len, float *embeds, int64_t *ids,
                                 int64_t *mask, int *n_real);

#ifdef __cplusplus
}
#endif
#endif
