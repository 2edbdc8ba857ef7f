/* Pieces of the random Wan model writer (see ferry/wan_random.h). */
#ifndef FERRY_DEMO_WAN_RANDOM_INTERNAL_H
#define FERRY_DEMO_WAN_RANDOM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "ferry/safetensors.h"
#include "ferry/wan_random.h"

/* One safetensors file of generated tensors. */
typedef struct rnd_file rnd_file;

fy_status rnd_file_create(uint64_t seed, fy_dtype dtype, rnd_file **out);
/* Seeded normal(0, std) values; std 0 gives zeros. The stream depends on the
 * seed and the tensor's name only, so the order of adds does not matter. */
fy_status rnd_normal(rnd_file *f, const char *name, int ndim, const int64_t *shape, double std);
/* Every element = value (norm gains). */
fy_status rnd_const(rnd_file *f, const char *name, int ndim, const int64_t *shape, double value);
fy_status rnd_file_finish(rnd_file *f, const char *path);
void rnd_file_free(rnd_file *f);

/* The components' weights (tensor names and shapes as diffusers and
 * transformers save them). te_vocab is the resolved vocab_size. */
fy_status rnd_write_text_encoder(const fy_wan_random_params *p, int te_vocab, const char *path);
/* expert 0: transformer, 1: transformer_2 (other weights) */
fy_status rnd_write_transformer(const fy_wan_random_params *p, int expert, const char *path);
fy_status rnd_write_vae(const fy_wan_random_params *p, const char *path);

/* The built-in English text the demo tokenizer is trained on. */
extern const char *const fy_wan_random_corpus[];
extern const size_t fy_wan_random_corpus_count;

#endif
