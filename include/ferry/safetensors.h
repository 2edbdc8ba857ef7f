/* safetensors: read (mmap, zero-copy views, sharded checkpoints) and write.
 *
 * Opening a file maps it read-only and validates the whole header up front
 * (JSON, dtypes, shapes x dtype size == bytes, offsets in order, no overlap,
 * nothing past the end, no duplicate names), so a view handed out later is
 * always in bounds. Tensor bytes are never touched by opening: only the pages
 * a caller reads are faulted in. */
#ifndef FERRY_SAFETENSORS_H
#define FERRY_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "ferry/error.h"
#include "ferry/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The format allows any rank; ferry's views go up to FY_MAX_DIMS. */
#define FY_ST_MAX_DIMS 8

typedef struct fy_st_info {
    const char *name;
    fy_dtype dtype;
    int ndim;
    int64_t shape[FY_ST_MAX_DIMS];
    uint64_t offset;     /* from the start of the data section */
    uint64_t nbytes;
    const void *data;    /* into the mapping */
} fy_st_info;

/* ---- One file ---------------------------------------------------------- */
typedef struct fy_st_file fy_st_file;

fy_status fy_st_open(const char *path, fy_st_file **out);
/* Parse a header held in memory (the fuzz target's entry): buf is the whole file. */
fy_status fy_st_open_memory(const void *buf, size_t size, const char *label, fy_st_file **out);
void fy_st_close(fy_st_file *f);

const char *fy_st_path(const fy_st_file *f);
size_t fy_st_count(const fy_st_file *f);
/* Tensors in file order (ascending offset). */
const fy_st_info *fy_st_at(const fy_st_file *f, size_t i);
const fy_st_info *fy_st_find(const fy_st_file *f, const char *name);
/* __metadata__ string values; NULL when absent. */
size_t fy_st_metadata_count(const fy_st_file *f);
const char *fy_st_metadata_key(const fy_st_file *f, size_t i);
const char *fy_st_metadata(const fy_st_file *f, const char *key);
/* FY_ERR_IO naming the file when it is not the file that was opened (its
 * inode, size or modification time changed): a run that read it may have
 * mixed old and new bytes. */
fy_status fy_st_check_unchanged(const fy_st_file *f);
/* A borrowing host view of a tensor (rank <= FY_MAX_DIMS); a tensor not
 * aligned to its element size (in a buffer from fy_st_open_memory) is refused. */
fy_status fy_st_view(const fy_st_file *f, const char *name, fy_tensor *out);
/* Which open, mapped file holds [data, data + nbytes), and at which byte
 * offset from the file's start (the offload engine's disk tier reads views
 * back from disk with it). FY_ERR_NOT_FOUND when none does. Thread-safe. */
fy_status fy_st_locate(const void *data, uint64_t nbytes, char *path, size_t path_size, uint64_t *file_offset);

/* ---- A checkpoint: one file, or shards named by *.safetensors.index.json --- */
typedef struct fy_st_set fy_st_set;

/* path is a .safetensors file or a .safetensors.index.json; every shard the
 * index names must exist and hold exactly the tensors the index maps to it.
 * A GGUF file (.gguf) opens as one file whose tensors may be quantised
 * (ferry/quant_gguf.h); its string metadata reads as __metadata__. */
fy_status fy_st_set_open(const char *path, fy_st_set **out);
/* Finds `<dir>/<stem>.safetensors` or `<dir>/<stem>.safetensors.index.json`
 * (diffusers: diffusion_pytorch_model; transformers: model). */
fy_status fy_st_set_open_dir(const char *dir, const char *stem, fy_st_set **out);
void fy_st_set_free(fy_st_set *s);

size_t fy_st_set_count(const fy_st_set *s);
size_t fy_st_set_file_count(const fy_st_set *s);
const fy_st_file *fy_st_set_file(const fy_st_set *s, size_t i);
/* All tensors across shards, sorted by name. */
const fy_st_info *fy_st_set_at(const fy_st_set *s, size_t i);
const fy_st_info *fy_st_set_find(const fy_st_set *s, const char *name);
fy_status fy_st_set_view(const fy_st_set *s, const char *name, fy_tensor *out);
/* The same, except that a quantised tensor (GGUF's blocks) comes back as an
 * f32 copy, made once and kept until the set is freed: for the small
 * tensors a model reads whole (norms, biases, tables). */
fy_status fy_st_set_view_f32(fy_st_set *s, const char *name, fy_tensor *out);
/* The file holding a tensor (for error messages and the disk tier). */
fy_status fy_st_set_check_unchanged(const fy_st_set *s);
const fy_st_file *fy_st_set_file_of(const fy_st_set *s, const char *name);

/* A set over one open file (taken over, closed by the set, also on error)
 * whose i-th tensor in file order is known as names[i], or left out when
 * names[i] is NULL: a single-file checkpoint in another naming scheme. Two
 * tensors given one name are an error naming both. */
fy_status fy_st_set_from_file(fy_st_file *f, const char *const *names, fy_st_set **out);
/* Give tensor `name` of such a set new contents: data (malloc'd, taken
 * over, freed by the set, also on error) of the same shape in dtype, such
 * as an fp8 weight dequantised at load. Its views no longer point into the
 * file (the disk tier cannot read them back). */
fy_status fy_st_set_replace(fy_st_set *s, const char *name, fy_dtype dtype, void *data);

/* ---- Writing ------------------------------------------------------------ */
typedef struct fy_st_writer fy_st_writer;

/* Tensors are added in memory order of the file; written at finish, to a
 * temporary name renamed into place, so a failed write leaves no file. */
fy_status fy_st_writer_create(fy_st_writer **out);
fy_status fy_st_writer_add(fy_st_writer *w, const char *name, fy_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, uint64_t nbytes);
fy_status fy_st_writer_add_tensor(fy_st_writer *w, const char *name, const fy_tensor *t);
/* A tensor whose bytes are produced at finish, chunk by chunk: fill writes
 * bytes [offset, offset + nbytes) of the tensor to dst (offsets and sizes are
 * multiples of the element size). A model larger than memory can be written
 * this way (random weights for benchmarks); user must stay valid until finish. */
typedef fy_status (*fy_st_fill_fn)(void *user, uint64_t offset, void *dst, size_t nbytes);
fy_status fy_st_writer_add_generated(fy_st_writer *w, const char *name, fy_dtype dtype, int ndim,
                                     const int64_t *shape, fy_st_fill_fn fill, void *user);
fy_status fy_st_writer_set_metadata(fy_st_writer *w, const char *key, const char *value);
uint64_t fy_st_writer_bytes(const fy_st_writer *w);
fy_status fy_st_writer_finish(fy_st_writer *w, const char *path);
void fy_st_writer_free(fy_st_writer *w);

/* Re-shard the checkpoint at in_path (file or index) into out_dir as
 * `<stem>-0000K-of-0000N.safetensors` + `<stem>.safetensors.index.json`,
 * each shard at most max_shard_bytes (a larger single tensor gets its own
 * shard), the layout diffusers' save_pretrained(max_shard_size=...) writes.
 * One shard -> a plain `<stem>.safetensors` without index, as diffusers does. */
fy_status fy_st_reshard(const char *in_path, const char *out_dir, const char *stem,
                        uint64_t max_shard_bytes);
/* The same, converting every float tensor of 2+ dims stored wider than
 * dtype (f32 to bf16, say) with PyTorch's rounding, as the engine's
 * --storage-dtype does at load; FY_DTYPE_COUNT = as stored. */
fy_status fy_st_reshard_as(const char *in_path, const char *out_dir, const char *stem, uint64_t max_shard_bytes,
                           fy_dtype dtype);

/* "5GB", "500MB", "2GiB", "1024" -> bytes (GB = 10^9, GiB = 2^30, as
 * huggingface's convert_file_size_to_int). */
fy_status fy_parse_size(const char *text, uint64_t *out);
/* Why text may not mean what fy_parse_size reads (a bare number as bytes,
 * a lower-case b as bits, G alone as GiB), or NULL: for a warning. */
const char *fy_size_ambiguity(const char *text);

#ifdef __cplusplus
}
#endif
#endif
