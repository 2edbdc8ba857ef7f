/* The disk tier's reader: see disk.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif
#include "mem/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef FERRY_HAVE_URING
#include <liburing.h>
#endif

#include "ferry/log.h"
#include "ferry/safetensors.h"

/* O_DIRECT wants offsets, lengths and buffers aligned to the logical block
 * size; 4 KiB covers 512-byte and 4K-native devices. */
#define DISK_ALIGN 4096u
/* Tensors of one group closer than this in a file are read as one extent. */
#define DISK_MERGE_GAP (256u * 1024u)
/* io_uring: reads of at most this size, this many in flight. */
#define DISK_CHUNK (2u * 1024u * 1024u)
#define DISK_QD 16u
/* io_uring: fruitless submits or failed waits in a row before giving it up. */
#define DISK_RETRIES 8

typedef struct disk_file {
    char path[1024];
    int fd;
    bool direct;
} disk_file;

typedef struct disk_extent {
    int file;
    uint64_t offset;  /* aligned start in the file */
    uint64_t length;  /* aligned length */
    uint64_t need;    /* bytes from offset the tensors need (the rest is padding) */
    uint64_t at;      /* in the staging slot (aligned) */
} disk_extent;

typedef struct disk_plan {
    char label[64];
    disk_extent *ext;
    int n_ext;
    uint64_t *weight_at; /* each weight's bytes in the staging slot */
    int n_weights;
    /* bf16/f16 storage: weights converted in place once read (NULL: none) */
    fy_dtype *from, *to;
    int64_t *numel;
    uint64_t bytes;      /* staged size */
} disk_plan;

enum { SLOT_FREE = 0, SLOT_READING, SLOT_READY, SLOT_HELD };

typedef struct disk_slot {
    char *buf;
    int state;
    int group;
    int64_t pos;
    uint64_t gen;
    fy_status status;
    char error[512];
    fy_event *done;     /* recorded after the copies from this slot */
    bool wait_done;
} disk_slot;

struct fy_disk {
    fy_backend *b;
    disk_file *files;
    int n_files, cap_files;
    disk_plan *plans;
    int *next;
    int n_groups;
    disk_slot *slot;
    int n_slots;
    uint64_t slot_bytes;
    bool slots_pinned;
    fy_disk_observer observer;
    void *observer_user;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running, stop;
    int64_t use_pos;   /* the position the consumer takes next */
    int64_t read_pos;  /* the position the reader fills next */
    int read_group;    /* the group predicted at read_pos */
    uint64_t gen;      /* bumped by each seek */
    fy_disk_info info;
#ifdef FERRY_HAVE_URING
    struct io_uring ring;
#endif
    bool uring;
};

static uint64_t align_down(uint64_t v)
{
    return v / DISK_ALIGN * DISK_ALIGN;
}

static uint64_t align_up(uint64_t v)
{
    return (v + DISK_ALIGN - 1) / DISK_ALIGN * DISK_ALIGN;
}

fy_status fy_disk_create(fy_backend *b, int n_groups, fy_disk **out)
{
    *out = NULL;
    fy_disk *d = calloc(1, sizeof *d);
    if (!d) return fy_error(FY_ERR_NOMEM, "disk tier: out of memory");
    d->b = b;
    d->n_groups = n_groups;
    d->plans = calloc((size_t)(n_groups > 0 ? n_groups : 1), sizeof *d->plans);
    d->next = calloc((size_t)(n_groups > 0 ? n_groups : 1), sizeof *d->next);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->read_group = -1;
    if (!d->plans || !d->next) {
        fy_disk_free(d);
        return fy_error(FY_ERR_NOMEM, "disk tier: out of memory");
    }
    for (int i = 0; i < n_groups; i++) d->next[i] = -1;
    *out = d;
    return FY_OK;
}

void fy_disk_free(fy_disk *d)
{
    if (!d) return;
    if (d->running) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    /* Every upload from a slot, and every record of its event, done before the
     * events and buffers go (a failed event wait must not leave one queued). */
    if (d->b && d->slot) d->b->vt->synchronize(d->b);
    for (int k = 0; k < d->n_slots; k++) {
        disk_slot *s = &d->slot[k];
        if (s->done) d->b->vt->event_destroy(d->b, s->done);
        if (s->buf && d->b) d->b->vt->free_pinned(d->b, s->buf, d->slot_bytes);
        else if (s->buf) fy_host_free_pinned(s->buf, d->slot_bytes);
    }
    free(d->slot);
    for (int i = 0; d->plans && i < d->n_groups; i++) { /* NULL when create ran out of memory */
        free(d->plans[i].ext);
        free(d->plans[i].weight_at);
        free(d->plans[i].from);
        free(d->plans[i].to);
        free(d->plans[i].numel);
    }
    free(d->plans);
    free(d->next);
    for (int i = 0; i < d->n_files; i++)
        if (d->files[i].fd >= 0) close(d->files[i].fd);
    free(d->files);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

void fy_disk_set_observer(fy_disk *d, fy_disk_observer fn, void *user)
{
    d->observer = fn;
    d->observer_user = user;
}

/* ---- Planning ------------------------------------------------------------ */

static fy_status open_file(fy_disk *d, const char *path, int *out)
{
    for (int i = 0; i < d->n_files; i++)
        if (strcmp(d->files[i].path, path) == 0) {
            *out = i;
            return FY_OK;
        }
    if (d->n_files == d->cap_files) {
        int cap = d->cap_files ? d->cap_files * 2 : 4;
        disk_file *f = realloc(d->files, (size_t)cap * sizeof *f);
        if (!f) return fy_error(FY_ERR_NOMEM, "disk tier: out of memory");
        d->files = f;
        d->cap_files = cap;
    }
    disk_file *f = &d->files[d->n_files];
    snprintf(f->path, sizeof f->path, "%s", path);
    f->direct = true;
    f->fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (f->fd < 0 && errno == EINVAL) {
        /* The file system refuses O_DIRECT: buffered reads, pages dropped after use. */
        f->direct = false;
        f->fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (f->fd < 0)
        return fy_error(errno == ENOENT ? FY_ERR_NOT_FOUND : FY_ERR_IO, "%s: cannot open for the disk tier: %s",
                        path, strerror(errno));
    if (f->direct) d->info.direct_files++;
    d->info.files++;
    *out = d->n_files++;
    return FY_OK;
}

typedef struct tensor_span {
    int weight, file;
    uint64_t start, end; /* in the file */
} tensor_span;

static int cmp_span(const void *a, const void *b)
{
    const tensor_span *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return x->start < y->start ? -1 : (x->start > y->start ? 1 : 0);
}

static fy_status locate_spans(fy_disk *d, const char *label, const fy_tensor *src, int n, tensor_span *spans)
{
    for (int w = 0; w < n; w++) {
        char path[1024];
        uint64_t nbytes = fy_tensor_nbytes(&src[w]), off = 0;
        if (fy_st_locate(src[w].data, nbytes, path, sizeof path, &off) != FY_OK)
            return fy_error(FY_ERR_UNSUPPORTED,
                            "disk tier: weight %d of %s is not a view into a safetensors file; only weights read "
                            "from model files can stay on disk (raise --max-memory cpu)", w, label);
        spans[w].weight = w;
        FY_TRY(open_file(d, path, &spans[w].file));
        spans[w].start = off;
        spans[w].end = off + nbytes;
    }
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    return FY_OK;
}

/* Sorted spans into aligned extents; each weight's place in the slot. */
static fy_status build_extents(disk_plan *p, const tensor_span *spans, int n)
{
    p->ext = calloc((size_t)(n > 0 ? n : 1), sizeof *p->ext);
    p->weight_at = calloc((size_t)(n > 0 ? n : 1), sizeof *p->weight_at);
    if (!p->ext || !p->weight_at) return fy_error(FY_ERR_NOMEM, "disk tier: out of memory planning %s", p->label);
    p->n_weights = n;
    uint64_t at = 0;
    disk_extent *cur = NULL;
    for (int i = 0; i < n; i++) {
        const tensor_span *s = &spans[i];
        bool merge = cur && cur->file == s->file && s->start <= cur->offset + cur->length + DISK_MERGE_GAP;
        if (!merge) {
            if (cur) at += cur->length;
            cur = &p->ext[p->n_ext++];
            cur->file = s->file;
            cur->offset = align_down(s->start);
            cur->at = at;
        }
        uint64_t end = s->end > cur->offset + cur->need ? s->end : cur->offset + cur->need;
        cur->need = end - cur->offset;
        cur->length = align_up(cur->need);
        p->weight_at[s->weight] = cur->at + (s->start - cur->offset);
    }
    if (cur) at += cur->length;
    p->bytes = at;
    return FY_OK;
}

static fy_status plan_conversions(disk_plan *p, const fy_tensor *src, const fy_dtype *to, int n)
{
    bool any = false;
    for (int w = 0; w < n && to; w++) any = any || to[w] != src[w].dtype;
    if (!any) return FY_OK;
    p->from = calloc((size_t)n, sizeof *p->from);
    p->to = calloc((size_t)n, sizeof *p->to);
    p->numel = calloc((size_t)n, sizeof *p->numel);
    if (!p->from || !p->to || !p->numel) return fy_error(FY_ERR_NOMEM, "disk tier: out of memory planning %s", p->label);
    for (int w = 0; w < n; w++) {
        bool narrower = src[w].dtype == FY_F32 && (to[w] == FY_BF16 || to[w] == FY_F16);
        if (to[w] != src[w].dtype && !narrower)
            return fy_error(FY_ERR_UNSUPPORTED, "disk tier: %s weight %d: %s to %s on read is not supported", p->label,
                            w, fy_dtype_name(src[w].dtype), fy_dtype_name(to[w]));
        p->from[w] = src[w].dtype;
        p->to[w] = to[w];
        p->numel[w] = fy_tensor_numel(&src[w]);
    }
    return FY_OK;
}

/* f32 to bf16/f16 over the same bytes: element i is written at 2i after
 * element i was read, so ascending order never overwrites an unread one. */
static void convert_in_place(const disk_plan *p, char *buf)
{
    for (int w = 0; p->to && w < p->n_weights; w++) {
        if (p->to[w] == p->from[w]) continue;
        char *at = buf + p->weight_at[w];
        for (int64_t i = 0; i < p->numel[w]; i++) {
            float v;
            memcpy(&v, at + 4 * i, sizeof v);
            uint16_t h = p->to[w] == FY_BF16 ? fy_f32_to_bf16(v) : fy_f32_to_f16(v);
            memcpy(at + 2 * i, &h, sizeof h);
        }
    }
}

fy_status fy_disk_plan_group(fy_disk *d, int group, const char *label, const fy_tensor *src, int n,
                             const fy_dtype *to, uint64_t *staged)
{
    *staged = 0;
    if (group < 0 || group >= d->n_groups) return fy_error(FY_ERR_INVALID, "disk tier: unknown group %d", group);
    disk_plan *p = &d->plans[group];
    snprintf(p->label, sizeof p->label, "%s", label);
    tensor_span *spans = calloc((size_t)(n > 0 ? n : 1), sizeof *spans);
    if (!spans) return fy_error(FY_ERR_NOMEM, "disk tier: out of memory planning %s", label);
    fy_status s = locate_spans(d, label, src, n, spans);
    if (s == FY_OK) s = build_extents(p, spans, n);
    if (s == FY_OK) s = plan_conversions(p, src, to, n);
    free(spans);
    *staged = p->bytes;
    return s;
}

void fy_disk_set_next(fy_disk *d, int group, int next)
{
    if (group >= 0 && group < d->n_groups) d->next[group] = next;
}

/* ---- Reading ------------------------------------------------------------- */

static fy_status io_error(const disk_file *f, uint64_t off, const char *what)
{
    return fy_error(FY_ERR_IO, "%s: disk tier read at byte %llu failed: %s", f->path, (unsigned long long)off, what);
}

/* pread until len bytes or the end of the file; *got the bytes read. A file
 * that refuses O_DIRECT at read time is reopened buffered. */
static fy_status pread_all(disk_file *f, char *dst, uint64_t off, uint64_t len, uint64_t *got)
{
    *got = 0;
    while (*got < len) {
        ssize_t r = pread(f->fd, dst + *got, (size_t)(len - *got), (off_t)(off + *got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EINVAL && f->direct) {
            int fd = open(f->path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) return io_error(f, off, strerror(errno));
            close(f->fd);
            f->fd = fd;
            f->direct = false;
            continue;
        }
        if (r < 0) return io_error(f, off + *got, strerror(errno));
        if (r == 0) break;
        *got += (uint64_t)r;
    }
    return FY_OK;
}

/* got counts from the extent's start. offset + got is where reading stopped,
 * which need not be the file's size, so the message does not call it that. */
static fy_status check_need(const disk_file *f, const disk_extent *x, uint64_t got)
{
    if (got >= x->need) return FY_OK;
    return fy_error(FY_ERR_IO,
                    "%s: short read at byte %llu of the extent [%llu, %llu) the disk tier needs: the file was "
                    "truncated or changed while ferry ran",
                    f->path, (unsigned long long)(x->offset + got), (unsigned long long)x->offset,
                    (unsigned long long)(x->offset + x->need));
}

static fy_status read_extents_pread(fy_disk *d, const disk_plan *p, char *buf)
{
    for (int i = 0; i < p->n_ext; i++) {
        const disk_extent *x = &p->ext[i];
        disk_file *f = &d->files[x->file];
        uint64_t got = 0;
        FY_TRY(pread_all(f, buf + x->at, x->offset, x->length, &got));
        FY_TRY(check_need(f, x, got));
    }
    return FY_OK;
}

#ifdef FERRY_HAVE_URING
typedef struct uring_chunk {
    int ext;
    uint64_t start;  /* from the extent's offset */
    uint64_t len;
    uint64_t got;
} uring_chunk;

/* The ring holds SQEs the kernel never took or completions never reaped, which
 * a later batch would misread: stop using it; pread reads from now on. */
static void uring_retire(fy_disk *d, const char *why)
{
    fy_warn("disk tier: %s; reading with pread from now on", why);
    io_uring_queue_exit(&d->ring);
    d->uring = false;
    pthread_mutex_lock(&d->mu);
    d->info.uring = false;
    pthread_mutex_unlock(&d->mu);
}

/* Submit `queued` SQEs. The kernel stops at an SQE it cannot take and leaves
 * the rest in the ring, so submitting again sends the rest. Returns how many
 * it took; *err the error that ended it early (0: none or only retries). */
static int uring_submit_all(struct io_uring *ring, int queued, int *err)
{
    int taken = 0, fruitless = 0;
    *err = 0;
    while (taken < queued && fruitless < DISK_RETRIES) {
        int r = io_uring_submit(ring);
        if (r > 0) {
            taken += r;
            fruitless = 0;
            continue;
        }
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            *err = -r;
            break;
        }
        fruitless++;
    }
    return taken;
}

/* Reap `taken` completions of chunks [from, to). Reaping goes on after a
 * failed wait, since the reads still land in the slot. *reaped: how many. */
static fy_status uring_reap(fy_disk *d, uring_chunk *c, int from, int to, int taken, int *reaped)
{
    fy_status s = FY_OK;
    int fails = 0;
    *reaped = 0;
    while (*reaped < taken && fails < DISK_RETRIES) {
        struct io_uring_cqe *cqe = NULL;
        int w = io_uring_wait_cqe(&d->ring, &cqe);
        if (w == -EINTR) continue;
        if (w < 0) {
            if (s == FY_OK) s = fy_error(FY_ERR_IO, "disk tier: io_uring wait failed: %s", strerror(-w));
            fails++;
            continue;
        }
        uint64_t i = io_uring_cqe_get_data64(cqe);
        if (i >= (uint64_t)from && i < (uint64_t)to) c[i].got = cqe->res > 0 ? (uint64_t)cqe->res : 0;
        io_uring_cqe_seen(&d->ring, cqe);
        (*reaped)++;
        fails = 0;
    }
    return s;
}

/* Submit chunks [from, to) and wait for all the kernel took. Chunks it did
 * not take keep got = 0, for the caller's pread to finish. */
static fy_status uring_batch(fy_disk *d, const disk_plan *p, char *buf, uring_chunk *c, int from, int to)
{
    int queued = 0;
    for (int i = from; i < to; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
        if (!sqe) break;
        const disk_extent *x = &p->ext[c[i].ext];
        io_uring_prep_read(sqe, d->files[x->file].fd, buf + x->at + c[i].start, (unsigned)c[i].len,
                           x->offset + c[i].start);
        io_uring_sqe_set_data64(sqe, (uint64_t)i);
        queued++;
    }
    int err = 0, reaped = 0;
    int taken = uring_submit_all(&d->ring, queued, &err);
    fy_status s = uring_reap(d, c, from, to, taken, &reaped);
    char why[160];
    if (reaped < taken) {
        /* Best effort: the kernel is asked to cancel what is still in flight. */
        snprintf(why, sizeof why, "io_uring completions lost (%d of %d reads unaccounted)", taken - reaped, taken);
        uring_retire(d, why);
    } else if (taken < queued) {
        snprintf(why, sizeof why, "io_uring took %d of %d reads (%s)", taken, queued,
                 err ? strerror(err) : "it kept refusing the rest");
        uring_retire(d, why);
    }
    return s;
}

static fy_status read_extents_uring(fy_disk *d, const disk_plan *p, char *buf)
{
    int n = 0;
    for (int i = 0; i < p->n_ext; i++) n += (int)((p->ext[i].length + DISK_CHUNK - 1) / DISK_CHUNK);
    uring_chunk *c = calloc((size_t)(n > 0 ? n : 1), sizeof *c);
    if (!c) return fy_error(FY_ERR_NOMEM, "disk tier: out of memory reading %s", p->label);
    int k = 0;
    for (int i = 0; i < p->n_ext; i++)
        for (uint64_t at = 0; at < p->ext[i].length; at += DISK_CHUNK, k++) {
            c[k].ext = i;
            c[k].start = at;
            c[k].len = p->ext[i].length - at < DISK_CHUNK ? p->ext[i].length - at : DISK_CHUNK;
        }
    fy_status s = FY_OK;
    for (int from = 0; from < n && s == FY_OK && d->uring; from += (int)DISK_QD)
        s = uring_batch(d, p, buf, c, from, from + (int)DISK_QD < n ? from + (int)DISK_QD : n);
    /* Short or failed chunks (end of file, EINVAL from O_DIRECT, errors) are
     * finished with pread, which knows how to report each case. */
    for (int i = 0; i < n && s == FY_OK; i++) {
        if (c[i].got >= c[i].len) continue;
        const disk_extent *x = &p->ext[c[i].ext];
        uint64_t more = 0;
        s = pread_all(&d->files[x->file], buf + x->at + c[i].start + c[i].got, x->offset + c[i].start + c[i].got,
                      c[i].len - c[i].got, &more);
        c[i].got += more;
    }
    for (int i = 0; i < n && s == FY_OK; i++) {
        const disk_extent *x = &p->ext[c[i].ext];
        if (c[i].got < c[i].len && c[i].start + c[i].got < x->need)
            s = check_need(&d->files[x->file], x, c[i].start + c[i].got);
    }
    free(c);
    return s;
}
#endif

static fy_status read_group(fy_disk *d, int group, char *buf)
{
    const disk_plan *p = &d->plans[group];
    fy_status s;
#ifdef FERRY_HAVE_URING
    if (d->uring) s = read_extents_uring(d, p, buf);
    else s = read_extents_pread(d, p, buf);
#else
    s = read_extents_pread(d, p, buf);
#endif
    for (int i = 0; i < p->n_ext; i++) {
        const disk_file *f = &d->files[p->ext[i].file];
        if (!f->direct) posix_fadvise(f->fd, (off_t)p->ext[i].offset, (off_t)p->ext[i].length, POSIX_FADV_DONTNEED);
    }
    if (s == FY_OK) convert_in_place(p, buf);
    return s;
}

/* ---- The reader thread ---------------------------------------------------- */

/* The last uploads from slot s are done. */
static fy_status wait_uploads(fy_disk *d, const disk_slot *s)
{
    fy_status st = d->b->vt->event_synchronize(d->b, s->done);
    if (st != FY_OK) return fy_error_prefix(st, "disk tier: waiting for the uploads from a staging slot: ");
    return FY_OK;
}

/* Called with the lock held: the slot the reader may fill next, or NULL. */
static disk_slot *next_to_fill(fy_disk *d)
{
    if (d->read_group < 0 || d->read_pos >= d->use_pos + d->n_slots) return NULL;
    disk_slot *s = &d->slot[d->read_pos % d->n_slots];
    return s->state == SLOT_FREE ? s : NULL;
}

static void *reader_main(void *arg)
{
    fy_disk *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        disk_slot *s = next_to_fill(d);
        if (!s) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        int group = d->read_group;
        s->state = SLOT_READING;
        s->group = group;
        s->pos = d->read_pos++;
        s->gen = d->gen;
        d->read_group = d->next[group];
        bool wait_done = s->wait_done;
        s->wait_done = false;
        pthread_mutex_unlock(&d->mu);

        /* Reading over a slot still being uploaded from would corrupt that upload. */
        fy_status st = wait_done ? wait_uploads(d, s) : FY_OK;
        double t0 = fy_backend_now();
        if (st == FY_OK) st = read_group(d, group, s->buf);
        double t1 = fy_backend_now();
        if (d->observer && st == FY_OK) d->observer(d->observer_user, d->plans[group].label, d->plans[group].bytes, t0, t1);

        pthread_mutex_lock(&d->mu);
        d->info.reads++;
        d->info.bytes_read += d->plans[group].bytes;
        d->info.read_time += t1 - t0;
        s->status = st;
        if (st != FY_OK) snprintf(s->error, sizeof s->error, "%s", fy_error_message());
        s->state = s->gen == d->gen ? SLOT_READY : SLOT_FREE; /* a seek made it stale */
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
#ifdef FERRY_HAVE_URING
    if (d->uring) io_uring_queue_exit(&d->ring);
#endif
    return NULL;
}

fy_status fy_disk_start(fy_disk *d, int slots, uint64_t slot_bytes, int first_group, bool *pinned)
{
    *pinned = true;
    d->slot = calloc((size_t)slots, sizeof *d->slot);
    if (!d->slot) return fy_error(FY_ERR_NOMEM, "disk tier: out of memory");
    d->n_slots = slots;
    d->slot_bytes = align_up(slot_bytes ? slot_bytes : 1);
    for (int k = 0; k < slots; k++) {
        bool locked = false;
        void *buf = NULL;
        if (d->b) FY_TRY(d->b->vt->alloc_pinned(d->b, d->slot_bytes, &buf, &locked));
        else FY_TRY(fy_host_alloc_pinned(d->slot_bytes, &buf, &locked));
        d->slot[k].buf = buf;
        if (!locked) *pinned = false;
        if (d->b) FY_TRY(d->b->vt->event_create(d->b, &d->slot[k].done));
    }
    d->read_group = first_group;
#ifdef FERRY_HAVE_URING
    /* Seccomp or an old kernel may refuse io_uring: pread then. */
    d->uring = io_uring_queue_init(DISK_QD, &d->ring, 0) == 0;
    d->info.uring = d->uring;
#endif
    if (pthread_create(&d->thread, NULL, reader_main, d) != 0) {
#ifdef FERRY_HAVE_URING
        if (d->uring) io_uring_queue_exit(&d->ring);
#endif
        return fy_error(FY_ERR_IO, "disk tier: cannot start the reader thread");
    }
    d->running = true;
    return FY_OK;
}

/* ---- The consumer -------------------------------------------------------- */

/* With the lock held: the slot at use_pos when its read belongs to this
 * generation, else NULL. */
static disk_slot *current(fy_disk *d)
{
    disk_slot *s = &d->slot[d->use_pos % d->n_slots];
    bool live = (s->state == SLOT_READING || s->state == SLOT_READY) && s->pos == d->use_pos && s->gen == d->gen;
    return live ? s : NULL;
}

static void seek(fy_disk *d, int group)
{
    d->gen++;
    d->info.seeks++;
    for (int k = 0; k < d->n_slots; k++)
        if (d->slot[k].state == SLOT_READY) d->slot[k].state = SLOT_FREE;
    d->read_pos = d->use_pos;
    d->read_group = group;
    pthread_cond_broadcast(&d->cv);
}

/* With the lock held. */
static int held_slots(const fy_disk *d)
{
    int n = 0;
    for (int k = 0; k < d->n_slots; k++) n += d->slot[k].state == SLOT_HELD;
    return n;
}

static int take(fy_disk *d, disk_slot *s)
{
    s->state = SLOT_HELD;
    d->use_pos++;
    pthread_cond_broadcast(&d->cv);
    return (int)(s - d->slot);
}

int fy_disk_poll(fy_disk *d, int group)
{
    pthread_mutex_lock(&d->mu);
    disk_slot *s = current(d);
    int k = s && s->group == group && s->state == SLOT_READY && s->status == FY_OK ? take(d, s) : -1;
    pthread_mutex_unlock(&d->mu);
    return k;
}

fy_status fy_disk_wait(fy_disk *d, int group, int *slot)
{
    *slot = -1;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        disk_slot *s = current(d);
        if (s && s->group != group) {
            seek(d, group);
            continue;
        }
        if (!s && d->read_pos == d->use_pos && d->read_group != group) seek(d, group);
        if (s && s->state == SLOT_READY) {
            if (s->status != FY_OK) {
                fy_status st = s->status;
                char msg[512];
                snprintf(msg, sizeof msg, "%s", s->error);
                pthread_mutex_unlock(&d->mu);
                return fy_error(st, "%s", msg);
            }
            *slot = take(d, s);
            break;
        }
        if (!s && d->slot[d->use_pos % d->n_slots].state == SLOT_HELD) {
            int held = held_slots(d);
            pthread_mutex_unlock(&d->mu);
            return fy_error(FY_ERR_INVALID,
                            "disk tier: %s asked for while %d blocks are held; the staging ring has %d slots",
                            d->plans[group].label, held, d->n_slots);
        }
        pthread_cond_wait(&d->cv, &d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return FY_OK;
}

void *fy_disk_weight(const fy_disk *d, int slot, int w)
{
    const disk_slot *s = &d->slot[slot];
    return s->buf + d->plans[s->group].weight_at[w];
}

fy_status fy_disk_done(fy_disk *d, int slot)
{
    disk_slot *s = &d->slot[slot];
    fy_status st = FY_OK;
    if (d->b) st = fy_backend_event_record(d->b, s->done, FY_STREAM_COPY);
    pthread_mutex_lock(&d->mu);
    s->wait_done = d->b != NULL;
    s->state = SLOT_FREE;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return st;
}

void fy_disk_info_get(fy_disk *d, fy_disk_info *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->info;
    pthread_mutex_unlock(&d->mu);
}
