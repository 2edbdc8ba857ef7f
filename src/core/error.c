/* The last error message lives in thread-local storage, like errno, so that
 * concurrent threads (the copy engine, worker pools) never clobber each other. */
#include "ferry/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FY_ERROR_MAX 1024

static _Thread_local char error_message[FY_ERROR_MAX];

const char *fy_status_name(fy_status s)
{
    switch (s) {
    case FY_OK: return "ok";
    case FY_ERR_INVALID: return "invalid";
    case FY_ERR_IO: return "io";
    case FY_ERR_FORMAT: return "format";
    case FY_ERR_NOT_FOUND: return "not-found";
    case FY_ERR_NOMEM: return "out-of-memory";
    case FY_ERR_BUDGET: return "budget";
    case FY_ERR_UNSUPPORTED: return "unsupported";
    case FY_ERR_DEVICE: return "device";
    case FY_ERR_MISMATCH: return "mismatch";
    case FY_ERR_INTERRUPTED: return "interrupted";
    case FY_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}

fy_status fy_error(fy_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return s;
}

fy_status fy_error_prefix(fy_status s, const char *fmt, ...)
{
    char prefix[FY_ERROR_MAX];
    char old[FY_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    /* Truncation is fine here: messages are one line for a person to read. */
    size_t n = strnlen(prefix, sizeof prefix - 1);
    memcpy(error_message, prefix, n);
    size_t rest = strnlen(old, sizeof old - 1);
    if (rest > sizeof error_message - 1 - n) rest = sizeof error_message - 1 - n;
    memcpy(error_message + n, old, rest);
    error_message[n + rest] = '\0';
    return s;
}

const char *fy_error_message(void)
{
    return error_message;
}

void fy_error_clear(void)
{
    error_message[0] = '\0';
}
