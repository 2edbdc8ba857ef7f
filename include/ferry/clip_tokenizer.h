/* CLIP's byte-level BPE tokenizer (vocab.json + merges.txt), applied as
 * transformers' slow CLIPTokenizer does when ftfy is installed, which is how
 * FluxPipeline tokenizes prompts for its CLIP text encoder:
 *
 *   text = whitespace_clean(ftfy.fix_text(text)).lower()
 *   words = CLIP regex: 's 't 're 've 'm 'll 'd | letter runs | one digit |
 *           runs of other non-space characters
 *   word  -> UTF-8 bytes -> GPT-2 byte-to-unicode symbols, "</w>" on the last
 *         -> BPE by merge rank (merges.txt, its first line a header)
 *   ids   = <|startoftext|>, tokens (unknown ones -> the unk token), <|endoftext|>
 *
 * Literal special-token strings in the text ("<|startoftext|>",
 * "<|endoftext|>") are split off first and map to their ids, as transformers'
 * added-token trie does. ftfy is ferry's subset (ferry/prompt.h); Unicode
 * letter/number classes and lower-casing come from ICU. Not reproduced: the
 * fallback transformers uses when ftfy is not installed (BERT's
 * BasicTokenizer). Encoding is thread-safe on a shared tokenizer. */
#ifndef FERRY_CLIP_TOKENIZER_H
#define FERRY_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_clip_tokenizer fy_clip_tokenizer;

/* Reads <dir>/vocab.json, <dir>/merges.txt and (optional)
 * <dir>/tokenizer_config.json (bos/eos/pad/unk tokens, model_max_length).
 * FY_ERR_NOT_FOUND / FY_ERR_FORMAT name the file; FY_ERR_UNSUPPORTED when
 * ferry was built without ICU. */
fy_status fy_clip_tokenizer_load(const char *dir, fy_clip_tokenizer **out);
void fy_clip_tokenizer_free(fy_clip_tokenizer *t);

int fy_clip_tokenizer_vocab_size(const fy_clip_tokenizer *t);
int fy_clip_tokenizer_max_length(const fy_clip_tokenizer *t); /* model_max_length (77) */
int64_t fy_clip_tokenizer_bos_id(const fy_clip_tokenizer *t);
int64_t fy_clip_tokenizer_eos_id(const fy_clip_tokenizer *t);
int64_t fy_clip_tokenizer_pad_id(const fy_clip_tokenizer *t);

/* tokenizer(text).input_ids, unpadded: bos, tokens, eos. *ids is malloc'ed
 * (free() it), *n its length. */
fy_status fy_clip_tokenizer_tokenize(const fy_clip_tokenizer *t, const char *text, int64_t **ids, size_t *n);

/* As FluxPipeline: padding="max_length", truncation=True. ids gets exactly
 * max_len entries: bos, at most max_len - 2 tokens, eos, then the pad id.
 * *n_real (bos and eos included) and *n_dropped (tokens truncation removed)
 * may be NULL. max_len must be >= 2. */
fy_status fy_clip_tokenizer_encode(const fy_clip_tokenizer *t, const char *text, int max_len, int64_t *ids,
                                   int *n_real, int *n_dropped);

#ifdef __cplusplus
}
#endif
#endif
