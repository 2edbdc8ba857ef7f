/* The disk tier's reader: weight groups read straight from their
 * safetensors files into a small ring of pinned staging buffers, ahead of
 * use, by one reader thread.
 *
 * Each group's tensors are turned back into file ranges (fy_st_locate),
 * merged into extents and widened to 4 KiB so they can be read with O_DIRECT
 * (no page cache). Files where O_DIRECT is refused (tmpfs, some network file
 * systems) are read buffered and their pages dropped after each group
 * (POSIX_FADV_DONTNEED), so the page cache stays bounded either way. With
 * liburing the extents of a group go to the kernel as one batch of large
 * reads; without it (or where io_uring is not allowed) they are pread in turn.
 *
 * The ring follows a predicted sequence of groups: each group names the one
 * expected after it (fy_disk_set_next). The consumer takes groups in order;
 * asking for a group other than the predicted one re-aims the reader there
 * (a seek: staged reads are dropped), so a wrong guess costs time, never
 * correctness. Slot states: free -> reading -> ready -> held -> free. On a
 * device a slot is free again only once the uploads from it are done: the
 * consumer records the slot's event after its copies and the reader waits
 * on it before reading into the slot again. */
#ifndef FERRY_MEM_DISK_H
#define FERRY_MEM_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/backend.h"
#include "ferry/error.h"
#include "ferry/tensor.h"

typedef struct fy_disk fy_disk;

/* Called on the reader thread after each group's read. */
typedef void (*fy_disk_observer)(void *user, const char *label, uint64_t bytes, double t0, double t1);

typedef struct fy_disk_info {
    int files;
    int direct_files;    /* opened with O_DIRECT */
    bool uring;          /* io_uring in use */
    uint64_t bytes_read; /* from disk, including alignment padding */
    uint64_t reads;      /* groups read */
    double read_time;    /* s the reader spent reading */
    uint64_t seeks;      /* mispredictions */
} fy_disk_info;

/* b: the backend whose copy stream reads the staging slots (NULL: the
 * consumer reads them itself, as on --device cpu). */
fy_status fy_disk_create(fy_backend *b, int n_groups, fy_disk **out);
/* Stops the reader (waits for a read in flight). */
void fy_disk_free(fy_disk *d);
void fy_disk_set_observer(fy_disk *d, fy_disk_observer fn, void *user);

/* Before start: where group `group`'s weights are on disk. *staged gets the
 * bytes a staging slot needs for it. Fails when a weight is not in an open
 * safetensors file or the file cannot be opened. to[w] (NULL: as read): the
 * dtype weight w is converted to in place once read (f32 to bf16/f16, for
 * --storage-dtype), so the slot then holds it as the engine stores it. */
fy_status fy_disk_plan_group(fy_disk *d, int group, const char *label, const fy_tensor *src, int n,
                             const fy_dtype *to, uint64_t *staged);
void fy_disk_set_next(fy_disk *d, int group, int next);
/* Allocate `slots` staging buffers of slot_bytes (pinned when possible) and
 * start reading at first_group. *pinned: whether locking worked. */
fy_status fy_disk_start(fy_disk *d, int slots, uint64_t slot_bytes, int first_group, bool *pinned);

/* The consumer, in order. Non-blocking: the slot holding group when it is the
 * next one and its read is done; -1 otherwise. */
int fy_disk_poll(fy_disk *d, int group);
/* Blocking: the slot holding group (re-aiming the reader when it predicted
 * another). Fails with the read's error (a truncated or unreadable file). */
fy_status fy_disk_wait(fy_disk *d, int group, int *slot);
/* Weight w of the group held in slot. */
void *fy_disk_weight(const fy_disk *d, int slot, int w);
/* The consumer is done with slot: with a backend, after the copies from it
 * it issued (an event is recorded on the copy stream). */
fy_status fy_disk_done(fy_disk *d, int slot);
void fy_disk_info_get(fy_disk *d, fy_disk_info *out);

#endif
