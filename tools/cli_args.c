/* The flag loop that generate, plan and demo share: the run options first
 * (one parser for every command), log flags, then the command's own
 * --flag VALUE / --flag=VALUE pairs. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Splits "--flag=value" (value points into arg) or takes the next argument. */
static const char *flag_value(const char *arg, int argc, char **argv, int i, char *flag, size_t size, bool *inline_value)
{
    const char *eq = strchr(arg, '=');
    *inline_value = eq && (size_t)(eq - arg) < size && arg[0] == '-';
    if (*inline_value) {
        memcpy(flag, arg, (size_t)(eq - arg));
        flag[eq - arg] = '\0';
        return eq + 1;
    }
    snprintf(flag, size, "%s", arg);
    return arg[0] == '-' && i < argc ? argv[i] : NULL;
}

int cli_parse_flags(const char *cmd, int argc, char **argv, fy_run_options *o, cli_flag_fn take, void *user)
{
    for (int i = 1; i < argc;) {
        bool consumed = false;
        if (fy_run_options_parse_arg(o, argc, argv, &i, &consumed) != FY_OK)
            return cli_usage_error(cmd, "%s", fy_error_message());
        if (consumed) continue;
        const char *arg = argv[i++];
        if (cli_log_flag(arg)) continue;
        char flag[64];
        bool inline_value = false;
        const char *value = flag_value(arg, argc, argv, i, flag, sizeof flag, &inline_value);
        if (!value)
            return cli_usage_error(cmd, "%s \"%s\"", arg[0] == '-' ? "missing value for" : "unexpected argument", arg);
        int rc = take(user, flag, value);
        if (rc < 0) return cli_usage_error(cmd, "unknown option \"%s\"", arg);
        if (rc > 0) return rc;
        if (!inline_value) i++;
    }
    return 0;
}

int cli_int_value(const char *cmd, const char *flag, const char *text, long min, long max, int *out)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < min || v > max)
        return cli_usage_error(cmd, "%s \"%s\": expected an integer from %ld to %ld", flag, text, min, max);
    *out = (int)v;
    return 0;
}

/* inf and nan are never meant: strtod accepts them, and they would reach
 * the arithmetic as numbers. */
int cli_double_value(const char *cmd, const char *flag, const char *text, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!*text || *end || !isfinite(v)) return cli_usage_error(cmd, "%s \"%s\": expected a finite number", flag, text);
    *out = v;
    return 0;
}

int cli_double_range(const char *cmd, const char *flag, const char *text, double min, double max, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!*text || *end || !isfinite(v) || v < min || v > max)
        return cli_usage_error(cmd, "%s \"%s\": expected a finite number from %g to %g", flag, text, min, max);
    *out = v;
    return 0;
}

int cli_seed_value(const char *cmd, const char *text, uint64_t *out)
{
    char *end = NULL;
    /* strtoull takes leading blanks and signs ("-1" wraps): digits only. */
    if (!isdigit((unsigned char)text[0]))
        return cli_usage_error(cmd, "--seed \"%s\": expected a non-negative integer", text);
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end) return cli_usage_error(cmd, "--seed \"%s\": expected a non-negative integer", text);
    /* strtoull clamps an overflow to the largest value: a different seed in silence. */
    if (errno == ERANGE)
        return cli_usage_error(cmd, "--seed \"%s\": above the largest seed, 18446744073709551615 (2^64-1)", text);
    *out = v;
    return 0;
}
