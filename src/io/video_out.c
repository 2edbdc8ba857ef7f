/* fy_video_write: format choice, 8-bit conversion, atomic single files.
 * The encoders live in video_mp4.c (libav) and png_out.c (libpng). */
#include "ferry/video_out.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ferry/log.h"

#include "io/video_out_internal.h"

#define SUPPORTED_OUTPUTS \
    ".mp4 (H.264), .png (one frame; several frames become name_0000.png ...), a folder ending in '/' or a name with %%04d (PNG sequence)"
/* Host bytes of the float input that we still agree to convert. */
#define MAX_VIDEO_VALUES ((uint64_t)1 << 34)

static uint8_t to_u8(float scaled)
{
    if (!(scaled > 0.0f)) return 0; /* also NaN */
    if (scaled >= 255.0f) return 255;
    return (uint8_t)scaled;
}

void fy_video_to_u8_trunc(const float *src, size_t n, uint8_t *dst)
{
    for (size_t i = 0; i < n; i++) dst[i] = to_u8(src[i] * 255.0f);
}

void fy_video_to_u8_round(const float *src, size_t n, uint8_t *dst)
{
    /* numpy rounds half to even; rintf does too in the default rounding mode. */
    for (size_t i = 0; i < n; i++) dst[i] = to_u8(rintf(src[i] * 255.0f));
}

int fy_video_have_mp4(void)
{
#ifdef FERRY_HAVE_LIBAV
    return 1;
#else
    return 0;
#endif
}

int fy_video_have_png(void)
{
#ifdef FERRY_HAVE_PNG
    return 1;
#else
    return 0;
#endif
}

static const char *extension_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    return dot && dot != base ? dot + 1 : NULL;
}

/* 1 when path holds exactly one "%d" / "%0Nd" and no other '%', 0 when it has
 * no '%', -1 when its '%' are anything else. */
static int frame_pattern_kind(const char *path)
{
    int conversions = 0;
    for (const char *p = strchr(path, '%'); p; p = strchr(p + 1, '%')) {
        const char *q = p + 1;
        if (*q == '0') q++;
        while (*q >= '0' && *q <= '9') q++;
        if (*q != 'd' || q - p > 4) return -1;
        conversions++;
    }
    return conversions == 0 ? 0 : conversions == 1 ? 1 : -1;
}

fy_status fy_video_format_for_path(const char *path, int frames, fy_video_format *out)
{
    if (!path || !*path) return fy_error(FY_ERR_INVALID, "video output: empty path");
    size_t len = strlen(path);
    int pattern = frame_pattern_kind(path);
    if (pattern < 0)
        return fy_error(FY_ERR_INVALID, "%s: a '%%' in an output name must be one frame number such as %%04d",
                        path);
    const char *ext = extension_of(path);
    if (path[len - 1] == '/') {
        *out = FY_VIDEO_PNG_SEQUENCE;
    } else if (ext && !strcasecmp(ext, "mp4") && !pattern) {
        *out = FY_VIDEO_MP4;
    } else if (ext && !strcasecmp(ext, "png")) {
        *out = pattern || frames > 1 ? FY_VIDEO_PNG_SEQUENCE : FY_VIDEO_PNG;
    } else {
        return fy_error(FY_ERR_UNSUPPORTED, "%s: unknown output type '%s%s'; supported: " SUPPORTED_OUTPUTS, path,
                        ext ? "." : "", ext ? ext : "(no extension)");
    }
    return FY_OK;
}

char *fy_video_temp_name(const char *path)
{
    const char *ext = extension_of(path);
    size_t n = strlen(path) + 64;
    char *tmp = malloc(n);
    if (tmp) snprintf(tmp, n, "%s.tmp.%ld.%s", path, (long)getpid(), ext ? ext : "tmp");
    return tmp;
}

fy_status fy_video_check_stop(const char *path, const fy_video_options *opts)
{
    if (opts && opts->should_stop && opts->should_stop(opts->user))
        return fy_error(FY_ERR_INTERRUPTED, "stopped by the user while writing %s", path);
    return FY_OK;
}

/* The pid in "<stem>...tmp.<pid>.<ext>" when name is a temporary output; 0 if not. */
static long temp_owner(const char *name, const char *stem)
{
    size_t n = strlen(stem);
    if (strncmp(name, stem, n) != 0) return 0;
    const char *t = NULL;
    for (const char *p = strstr(name + n, ".tmp."); p; p = strstr(p + 1, ".tmp.")) t = p;
    if (!t) return 0;
    char *end = NULL;
    errno = 0;
    long pid = strtol(t + 5, &end, 10);
    if (errno || end == t + 5 || *end != '.' || pid <= 0 || strchr(end + 1, '.') || strchr(end + 1, '/')) return 0;
    return pid;
}

static bool stale(int dir_fd, const char *name, long pid)
{
    struct stat st;
    if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) return false;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
        return false;
    return st.st_mtime + 60 < time(NULL);
}

void fy_video_clean_stale(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096], stem[1024];
    int dn = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + 1), path) : snprintf(dir, sizeof dir, ".");
    const char *base = slash ? slash + 1 : path;
    size_t stem_len = strcspn(base, "%");
    if (dn < 0 || (size_t)dn >= sizeof dir || stem_len >= sizeof stem) return;
    memcpy(stem, base, stem_len);
    stem[stem_len] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        long pid = temp_owner(e->d_name, stem);
        if (pid && stale(dirfd(d), e->d_name, pid) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            fy_warn("removed %s%s, a temporary output left by process %ld, which no longer runs", slash ? dir : "",
                    e->d_name, pid);
    }
    closedir(d);
}

static fy_status check_shape(const char *path, const float *video, int frames, int height, int width, int fps)
{
    if (!video) return fy_error(FY_ERR_INVALID, "%s: no video data", path);
    if (frames < 1 || frames > FY_VIDEO_MAX_FRAMES)
        return fy_error(FY_ERR_INVALID, "%s: %d frames (1 to %d can be written)", path, frames, FY_VIDEO_MAX_FRAMES);
    if (height < 1 || width < 1 || height > FY_VIDEO_MAX_SIDE || width > FY_VIDEO_MAX_SIDE)
        return fy_error(FY_ERR_INVALID, "%s: frame size %dx%d (width and height must be 1 to %d)", path, width,
                        height, FY_VIDEO_MAX_SIDE);
    if ((uint64_t)frames * (uint64_t)height * (uint64_t)width * 3u > MAX_VIDEO_VALUES)
        return fy_error(FY_ERR_INVALID, "%s: %d frames of %dx%d is too large to write in one piece", path, frames,
                        width, height);
    if (fps < 1 || fps > 1000) return fy_error(FY_ERR_INVALID, "%s: frame rate %d (must be 1 to 1000)", path, fps);
    return FY_OK;
}

/* Publish tmp as path, or remove tmp when s is a failure. */
static fy_status publish(fy_status s, const char *path, const char *tmp)
{
    if (s == FY_OK && rename(tmp, path) != 0)
        s = fy_error(FY_ERR_IO, "%s: cannot move the finished file into place: %s", path, strerror(errno));
    if (s != FY_OK) unlink(tmp);
    return s;
}

static fy_status write_mp4(const char *path, const float *video, int frames, int height, int width, int fps,
                           const fy_video_options *opts)
{
    if (!fy_video_have_mp4())
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: this ferry was built without libavformat/libavcodec/libswscale, so it cannot write "
                        "MP4 (install libavformat-dev libavcodec-dev libswscale-dev and rebuild, or write .png)",
                        path);
    char *tmp = fy_video_temp_name(path);
    if (!tmp) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    fy_status s = publish(fy_mp4_write(path, tmp, video, frames, height, width, fps, opts), path, tmp);
    free(tmp);
    return s;
}

static fy_status write_png(const char *path, const float *video, int height, int width,
                           const fy_video_options *opts)
{
    size_t n = (size_t)height * (size_t)width * 3u;
    uint8_t *rgb = malloc(n);
    char *tmp = fy_video_temp_name(path);
    fy_status s = FY_OK;
    if (!rgb || !tmp) {
        s = fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    } else {
        fy_video_to_u8_round(video, n, rgb);
        s = fy_video_check_stop(path, opts);
        const char *const *meta = opts ? opts->metadata : NULL;
        if (s == FY_OK) s = publish(fy_png_write_rgb8(path, tmp, rgb, height, width, meta), path, tmp);
    }
    free(rgb);
    free(tmp);
    return s;
}

/* The printf pattern for a sequence: "dir/" -> "dir/frame_%04d.png",
 * "x.png" -> "x_%04d.png", a pattern stays as it is. */
static char *sequence_pattern(const char *path)
{
    size_t len = strlen(path);
    char *pattern = malloc(len + 32);
    if (!pattern) return NULL;
    if (frame_pattern_kind(path) == 1) {
        memcpy(pattern, path, len + 1);
    } else if (path[len - 1] == '/') {
        snprintf(pattern, len + 32, "%sframe_%%04d.png", path);
    } else {
        const char *ext = extension_of(path);
        size_t stem = ext ? (size_t)(ext - 1 - path) : len;
        snprintf(pattern, len + 32, "%.*s_%%04d.%s", (int)stem, path, ext ? ext : "png");
    }
    return pattern;
}

fy_status fy_video_write_opts(const char *path, const float *video, int frames, int height, int width, int fps,
                              fy_video_format fmt_or_auto, const fy_video_options *opts)
{
    fy_video_format fmt = fmt_or_auto;
    if (fmt == FY_VIDEO_AUTO) FY_TRY(fy_video_format_for_path(path, frames, &fmt));
    if (!path || !*path) return fy_error(FY_ERR_INVALID, "video output: empty path");
    FY_TRY(check_shape(path, video, frames, height, width, fps));
    if (fmt != FY_VIDEO_PNG_SEQUENCE) fy_video_clean_stale(path);
    if (fmt == FY_VIDEO_MP4) return write_mp4(path, video, frames, height, width, fps, opts);
    if (!fy_video_have_png())
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: this ferry was built without libpng, so it cannot write PNG (install libpng-dev and "
                        "rebuild, or write .mp4)",
                        path);
    if (fmt == FY_VIDEO_PNG && frames == 1) return write_png(path, video, height, width, opts);
    if (fmt != FY_VIDEO_PNG && fmt != FY_VIDEO_PNG_SEQUENCE)
        return fy_error(FY_ERR_INVALID, "%s: unknown video format %d", path, (int)fmt);
    if (frame_pattern_kind(path) < 0)
        return fy_error(FY_ERR_INVALID, "%s: a '%%' in an output name must be one frame number such as %%04d", path);
    char *pattern = sequence_pattern(path);
    if (!pattern) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    fy_video_clean_stale(pattern);
    fy_status s = fy_png_write_sequence(path, pattern, video, frames, height, width, opts);
    free(pattern);
    return s;
}

fy_status fy_video_write(const char *path, const float *video, int frames, int height, int width, int fps,
                         fy_video_format fmt_or_auto)
{
    return fy_video_write_opts(path, video, frames, height, width, fps, fmt_or_auto, NULL);
}
