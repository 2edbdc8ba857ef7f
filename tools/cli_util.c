/* Error reporting, log flags and number formatting shared by the subcommands. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ferry/collectives.h"
#include "ferry/log.h"

int cli_fail(void)
{
    const char *msg = fy_error_message();
    fy_comm *w = fy_dist_world();
    if (w && fy_comm_size(w) > 1)
        fprintf(stderr, "ferry: error: [rank %d] %s\n", fy_comm_rank(w), msg[0] ? msg : "failed (no message)");
    else
        fprintf(stderr, "ferry: error: %s\n", msg[0] ? msg : "failed (no message)");
    return CLI_EXIT_FAILURE;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cmd) fprintf(stderr, "ferry: error: %s: %s (see ferry %s --help)\n", cmd, msg, cmd);
    else fprintf(stderr, "ferry: error: %s (see ferry --help)\n", msg);
    return CLI_EXIT_USAGE;
}

bool cli_log_flag(const char *arg)
{
    fy_log_level level = fy_log_get_level();
    if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
        fy_log_set_level(level < FY_LOG_DEBUG ? FY_LOG_DEBUG : FY_LOG_TRACE);
    } else if (strcmp(arg, "-vv") == 0) {
        fy_log_set_level(FY_LOG_TRACE);
    } else if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0) {
        fy_log_set_level(level > FY_LOG_WARN ? FY_LOG_WARN : FY_LOG_ERROR);
    } else {
        return false;
    }
    return true;
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* Three significant digits, as people quote model sizes (1.3B, 14B, 33.2K). */
static const char *three_digits(double v, const char *const *units, size_t nunits, double step, char *buf,
                                 size_t size)
{
    size_t u = 0;
    while (u + 1 < nunits && v >= step * 0.9995) {
        v /= step;
        u++;
    }
    if (u == 0) snprintf(buf, size, "%.0f%s", v, units[0]);
    else if (v < 9.995) snprintf(buf, size, "%.2f%s", v, units[u]);
    else if (v < 99.95) snprintf(buf, size, "%.1f%s", v, units[u]);
    else snprintf(buf, size, "%.0f%s", v, units[u]);
    return buf;
}

const char *cli_human_count(uint64_t n, char *buf, size_t size)
{
    static const char *const units[] = {"", "K", "M", "B", "T"};
    return three_digits((double)n, units, 5, 1000.0, buf, size);
}

const char *cli_human_bytes(uint64_t n, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long)n);
        return buf;
    }
    double v = (double)n;
    size_t u = 0;
    while (u + 1 < 6 && v >= 1023.95) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}

/* An impossible device budget under a forced plan: which of the components'
 * host offloads would make it fit, with the device bound each gives,
 * appended to the error. */
void cli_budget_hint(const char *model, const fy_run_options *o, const fy_wan_t2v_params *p)
{
    if (o->device == FY_DEVICE_CPU || (o->text_encoder_cpu_offload && o->vae_cpu_offload)) return;
    /* The planner tried these itself: its error says what the smallest needs. */
    if ((o->vram_budget || o->vram_budget_auto) && !o->offload_explicit && o->device_map == FY_DEVICE_MAP_NONE &&
        !o->use_fsdp_inference)
        return;
    char saved[1024], hint[512] = "";
    snprintf(saved, sizeof saved, "%s", fy_error_message());
    static const struct { bool te, vae; const char *flags; } tries[] = {
        {true, false, "--text-encoder-cpu-offload"},
        {false, true, "--vae-cpu-offload"},
        {true, true, "--text-encoder-cpu-offload --vae-cpu-offload"},
    };
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        fy_run_options v = *o;
        v.text_encoder_cpu_offload = o->text_encoder_cpu_offload || tries[i].te;
        v.vae_cpu_offload = o->vae_cpu_offload || tries[i].vae;
        if (v.text_encoder_cpu_offload == o->text_encoder_cpu_offload && v.vae_cpu_offload == o->vae_cpu_offload)
            continue;
        fy_plan plan;
        if (fy_wan_t2v_device_plan(model, &v, p, &plan) != FY_OK) continue;
        char bound[32];
        size_t at = strlen(hint);
        snprintf(hint + at, sizeof hint - at, "%s%s (device bound %s)", at ? "; " : "", tries[i].flags,
                 cli_human_bytes(plan.device_bound, bound, sizeof bound));
    }
    if (hint[0]) fy_error(FY_ERR_BUDGET, "%s; these would fit: %s", saved, hint);
    else fy_error(FY_ERR_BUDGET, "%s", saved);
}
