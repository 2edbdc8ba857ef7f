/* Error codes and the calling thread's last error message.
 *
 * Every library function that can fail returns an fy_status and, on failure,
 * leaves a one-line message (naming the file and the fix where there is one)
 * that fy_error_message() returns. There is no exit() or abort() in the library. */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_status {
    FY_OK = 0,
    FY_ERR_INVALID,      /* bad argument or bad user input (flags, sizes) */
    FY_ERR_IO,           /* open/read/write/mmap failed */
    FY_ERR_FORMAT,       /* a file is malformed (safetensors, JSON, config) */
    FY_ERR_NOT_FOUND,    /* a file, tensor, key or component is missing */
    FY_ERR_NOMEM,        /* host allocation failed */
    FY_ERR_BUDGET,       /* a device/host memory budget cannot be met */
    FY_ERR_UNSUPPORTED,  /* valid input that ferry does not handle (yet) */
    FY_ERR_DEVICE,       /* the backend/driver reported an error */
    FY_ERR_MISMATCH,     /* a numerical comparison failed (verify) */
    FY_ERR_INTERRUPTED,  /* the user asked to stop (Ctrl-C) */
    FY_ERR_INTERNAL      /* a broken invariant: a bug in ferry */
} fy_status;

/* Short stable name of a status, e.g. "format". */
const char *fy_status_name(fy_status s);

/* Record a printf-style message for the calling thread and return s, so that
 * failures read `return fy_error(FY_ERR_FORMAT, "%s: header is not JSON", path);` */
fy_status fy_error(fy_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prefix the current message with context ("loading transformer: "). Returns s. */
fy_status fy_error_prefix(fy_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The calling thread's last message ("" when none). */
const char *fy_error_message(void);
void fy_error_clear(void);

/* Propagate a failure without adding context. */
#define FY_TRY(expr)                         \
    do {                                     \
        fy_status fy_try_s_ = (expr);        \
        if (fy_try_s_ != FY_OK) return fy_try_s_; \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
