/* Ctrl-C (SIGINT) and SIGTERM stop a command the same way, at every stage:
 * the handler only records the signal; the run polls it between steps and
 * stages, the writers between frames, and the command ends with one line, its
 * temporary files removed and the shell's exit status 128 + the signal. A
 * second signal takes the default action (the handler resets itself), so a
 * stuck run can still be killed. Installs nest (demo runs generate). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static volatile sig_atomic_t stop_signal;
static int depth;
static struct sigaction saved[2];
static const int signals[2] = {SIGINT, SIGTERM};

static void on_stop(int sig)
{
    stop_signal = sig;
}

void cli_stop_install(void)
{
    if (depth++) return;
    stop_signal = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 2; i++) sigaction(signals[i], &sa, &saved[i]);
}

void cli_stop_restore(void)
{
    if (--depth) return;
    for (int i = 0; i < 2; i++) sigaction(signals[i], &saved[i], NULL);
}

bool cli_stop_requested(void)
{
    return stop_signal != 0;
}

int cli_stopped(void)
{
    int sig = stop_signal ? stop_signal : SIGINT;
    const char *msg = fy_error_message();
    fprintf(stderr, "ferry: error: %s (%s); no output was written\n", msg[0] ? msg : "stopped by the user",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    return 128 + sig;
}

/* Tests stop a run at an exact stage: FERRY_TEST_RAISE="TERM:vae decode"
 * (or INT:) raises that signal when the stage begins ("write": the output's
 * first frame). */
void cli_stop_test_hook(const char *stage)
{
    const char *spec = getenv("FERRY_TEST_RAISE");
    if (!spec || !stage) return;
    int sig = strncmp(spec, "TERM:", 5) == 0 ? SIGTERM : strncmp(spec, "INT:", 4) == 0 ? SIGINT : 0;
    const char *at = strchr(spec, ':');
    if (sig && at && strcmp(at + 1, stage) == 0 && !stop_signal) raise(sig);
}
