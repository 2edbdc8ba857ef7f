/* The text encoder's tokenizer: a sentencepiece model (<dir>/spiece.model)
 * applied with the semantics of transformers' slow T5Tokenizer (legacy=True),
 * which is how WanPipeline tokenizes prompts for UMT5:
 *
 *   tokenizer(text, padding="max_length", max_length=max_len, truncation=True,
 *             add_special_tokens=True, return_attention_mask=True)
 *
 * The text is first split at the literal special-token strings the model
 * defines ("<pad>", "</s>", "<unk>"), which map straight to their ids; every
 * other chunk goes through sentencepiece (its normalizer included, e.g.
 * nmt_nfkc). Truncation drops content tokens from the right, then "</s>" is
 * appended (unless the content already ends with it), so a truncated result
 * is exactly max_len long and ends with </s>. Padding uses the pad id.
 * Encoding is thread-safe on a shared tokenizer. */
#ifndef FERRY_TOKENIZER_H
#define FERRY_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_tokenizer fy_tokenizer;

/* Reads <dir>/spiece.model. FY_ERR_NOT_FOUND when it is missing,
 * FY_ERR_FORMAT when it is not a sentencepiece model, FY_ERR_UNSUPPORTED
 * when ferry was built without libsentencepiece. */
fy_status fy_tokenizer_load(const char *dir, fy_tokenizer **out);
void fy_tokenizer_free(fy_tokenizer *tok);

/* Number of pieces in the sentencepiece model. */
int fy_tokenizer_vocab_size(const fy_tokenizer *tok);
int64_t fy_tokenizer_pad_id(const fy_tokenizer *tok);
int64_t fy_tokenizer_eos_id(const fy_tokenizer *tok);

/* ids and mask get exactly max_len entries (mask may be NULL): the tokens,
 * then padding (mask 1 for real tokens, 0 for padding). *n_real gets the
 * number of real tokens (eos included), *n_dropped the number of content
 * tokens truncation removed, so the caller can warn as transformers does.
 * Either out pointer may be NULL. max_len must be >= 1. */
fy_status fy_tokenizer_encode(const fy_tokenizer *tok, const char *text, int max_len,
                              int64_t *ids, int64_t *mask, int *n_real, int *n_dropped);

/* Train a T5-style sentencepiece model (unigram, nmt_nfkc, pad=0 eos=1
 * unk=2, no bos) on the given sentences and write it to path (atomically).
 * vocab_size is an upper bound (the trainer stops early on a small corpus);
 * *pieces (may be NULL) gets the size it reached. Deterministic: one thread,
 * no sampling. FY_ERR_UNSUPPORTED when ferry was built without
 * libsentencepiece_train. */
fy_status fy_tokenizer_train(const char *const *sentences, size_t count, int vocab_size, const char *path,
                             int *pieces);

#ifdef __cplusplus
}
#endif
#endif
