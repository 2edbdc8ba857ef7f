/* Shared between video_out.c (dispatch, atomic files), video_mp4.c and png_out.c. */
#ifndef FERRY_IO_VIDEO_OUT_INTERNAL_H
#define FERRY_IO_VIDEO_OUT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "ferry/video_out.h"

/* "<path>.tmp.<pid>.<ext>" (ext from path, "tmp" without one); malloc'ed or NULL. */
char *fy_video_temp_name(const char *path);

/* Encode (F, H, W, 3) floats in [0, 1] (converted per frame with
 * fy_video_to_u8_trunc) to an MP4 at tmp_path (already a temp name); `path`
 * names the output in messages. */
fy_status fy_mp4_write(const char *path, const char *tmp_path, const float *video, int frames, int height,
                       int width, int fps, const fy_video_options *opts);

/* One RGB8 PNG at tmp_path, with text chunks from meta's key, value pairs
 * (NULL-terminated; meta may be NULL). */
fy_status fy_png_write_rgb8(const char *path, const char *tmp_path, const uint8_t *rgb, int height, int width,
                            const char *const *meta);

/* Numbered PNGs named by pattern (one "%d"-style conversion), all or none. */
fy_status fy_png_write_sequence(const char *label, const char *pattern, const float *video, int frames,
                                int height, int width, const fy_video_options *opts);

/* opts asks the write to stop (FY_ERR_INTERRUPTED with a message naming path). */
fy_status fy_video_check_stop(const char *path, const fy_video_options *opts);

/* Removes temporary outputs ("<name>.tmp.<pid>.<ext>") that processes now
 * dead (killed mid-write) left beside path, a file or a frame pattern: only
 * names that start as path's do (up to a '%'), only the user's own files,
 * only of pids that no longer run, only untouched for a minute. */
void fy_video_clean_stale(const char *path);

#endif
