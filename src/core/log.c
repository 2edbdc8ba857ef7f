#include "ferry/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

/* -1: not chosen yet; the first use reads FERRY_LOG, else defaults to info. */
static int current_level = -1;

int fy_log_parse_level(const char *name, fy_log_level *out)
{
    for (int i = 0; i <= FY_LOG_TRACE; i++) {
        if (name && strcmp(name, level_names[i]) == 0) {
            *out = (fy_log_level)i;
            return 0;
        }
    }
    return -1;
}

void fy_log_set_level(fy_log_level level)
{
    current_level = (int)level;
}

fy_log_level fy_log_get_level(void)
{
    if (current_level < 0) {
        fy_log_level level = FY_LOG_INFO;
        const char *env = getenv("FERRY_LOG");
        if (env) fy_log_parse_level(env, &level);
        current_level = (int)level;
    }
    return (fy_log_level)current_level;
}

void fy_log(fy_log_level level, const char *fmt, ...)
{
    if (level > fy_log_get_level()) return;
    /* One formatted write per line keeps lines whole when threads log. */
    char line[2048];
    int n = 0;
    if (level != FY_LOG_INFO) n = snprintf(line, sizeof line, "ferry: %s: ", level_names[level]);
    else n = snprintf(line, sizeof line, "ferry: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (len + 1 < sizeof line && (len == 0 || line[len - 1] != '\n')) {
        line[len++] = '\n';
        line[len] = '\0';
    }
    fputs(line, stderr);
}
