/* Writing the generated video: H.264 MP4 (libav*) or PNG (libpng).
 *
 * The input is what diffusers' pipeline returns with output_type="np":
 * (F, H, W, 3) float32 RGB in [0, 1], frame-major. 8-bit conversion follows
 * diffusers exactly:
 *   - MP4:  export_to_video's (frame * 255).astype(np.uint8), a truncation;
 *   - PNG:  numpy_to_pil's (x * 255).round().astype("uint8");
 * both clamp to [0, 255] first (NaN -> 0), where numpy would wrap.
 *
 * The format comes from the path unless given:
 *   "x.mp4"                      H.264 (libx264, crf 18, yuv420p; else the
 *                                 "h264" encoder, else mpeg4, with a warning),
 *                                 frame rate fps; an odd width/height is padded
 *                                 by one edge-replicated column/row (warned);
 *   "x.png" with 1 frame         one PNG;
 *   "x.png" with F > 1 frames    x_0000.png ... x_{F-1}.png beside it;
 *   "dir/"                       dir/frame_0000.png ... (dir created if missing);
 *   "dir/f_%04d.png", "%d"       printf-numbered PNGs from 0.
 * Outputs are atomic: everything is written under temporary names
 * ("<path>.tmp.<pid>.<ext>") and renamed into place only when all of it
 * succeeded; on failure the temporary files (and a folder this call made)
 * are removed, so there is never a partial or truncated output. */
#ifndef FERRY_VIDEO_OUT_H
#define FERRY_VIDEO_OUT_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_video_format {
    FY_VIDEO_AUTO = 0,     /* from the path, as above */
    FY_VIDEO_MP4,          /* H.264 in MP4, whatever the extension */
    FY_VIDEO_PNG,          /* one PNG for one frame, else a sequence */
    FY_VIDEO_PNG_SEQUENCE  /* always numbered PNGs, even for one frame */
} fy_video_format;

typedef struct fy_video_options {
    int crf;              /* x264 constant rate factor; < 0: 18 */
    int64_t bitrate;      /* bits/s; > 0 uses a bitrate target instead of crf */
    const char *encoder;  /* libavcodec encoder name; NULL: libx264, h264, mpeg4 */
    /* Polled between frames: true stops the write (FY_ERR_INTERRUPTED), its
     * temporary files removed. NULL: never. */
    bool (*should_stop)(void *user);
    void *user;
    /* Key, value pairs ending in NULL ("prompt", "a fox", "seed", "42", NULL):
     * MP4 metadata tags, PNG iTXt chunks (UTF-8). At most 16 pairs. */
    const char *const *metadata;
} fy_video_options;

/* Limits that turn absurd sizes into one clear error instead of a huge allocation. */
#define FY_VIDEO_MAX_SIDE 16384
#define FY_VIDEO_MAX_FRAMES 100000

fy_status fy_video_write(const char *path, const float *video, int frames, int height, int width, int fps,
                         fy_video_format fmt_or_auto);
/* The same with encoder options (opts may be NULL). */
fy_status fy_video_write_opts(const char *path, const float *video, int frames, int height, int width,
                              int fps, fy_video_format fmt_or_auto, const fy_video_options *opts);

/* The format fy_video_write would pick (FY_ERR_UNSUPPORTED for an unknown
 * extension, naming the supported ones). */
fy_status fy_video_format_for_path(const char *path, int frames, fy_video_format *out);

/* The 8-bit conversions above, n values. */
void fy_video_to_u8_trunc(const float *src, size_t n, uint8_t *dst); /* export_to_video */
void fy_video_to_u8_round(const float *src, size_t n, uint8_t *dst); /* numpy_to_pil */

/* Whether this build can write each format. */
int fy_video_have_mp4(void);
int fy_video_have_png(void);

#ifdef __cplusplus
}
#endif
#endif
