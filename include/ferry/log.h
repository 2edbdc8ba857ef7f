/* Leveled logging to stderr. The level is a process-wide setting chosen by
 * the application (the CLI's -v/-q), read from FERRY_LOG if never set. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_log_level {
    FY_LOG_ERROR = 0,
    FY_LOG_WARN = 1,
    FY_LOG_INFO = 2,
    FY_LOG_DEBUG = 3,
    FY_LOG_TRACE = 4
} fy_log_level;

void fy_log_set_level(fy_log_level level);
fy_log_level fy_log_get_level(void);
/* Parses "error|warn|info|debug|trace"; returns 0 on success. */
int fy_log_parse_level(const char *name, fy_log_level *out);

void fy_log(fy_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#define fy_warn(...) fy_log(FY_LOG_WARN, __VA_ARGS__)
#define fy_info(...) fy_log(FY_LOG_INFO, __VA_ARGS__)
#define fy_debug(...) fy_log(FY_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
