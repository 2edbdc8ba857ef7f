/* H.264 MP4 through libavcodec/libavformat/libswscale. The caller owns the
 * temporary file's fate (renamed on success, removed on failure). */
#include "io/video_out_internal.h"

#ifdef FERRY_HAVE_LIBAV
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "ferry/log.h"

#define DEFAULT_CRF 18

typedef struct mp4_writer {
    const char *path;
    AVFormatContext *fmt;
    AVCodecContext *codec;
    AVStream *stream;
    struct SwsContext *sws;
    AVFrame *frame;
    AVPacket *packet;
    uint8_t *rgb;    /* one input frame in 8 bits */
    uint8_t *padded; /* an even-sized RGB frame when the input is odd-sized */
    int width, height, out_width, out_height;
} mp4_writer;

static fy_status av_fail(const mp4_writer *w, const char *what, int err)
{
    char msg[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(err, msg, sizeof msg);
    return fy_error(FY_ERR_IO, "%s: %s: %s", w->path, what, msg);
}

/* The encoder to use: the one asked for, else libx264, else any H.264, else mpeg4. */
static const AVCodec *pick_encoder(const mp4_writer *w, const fy_video_options *opts)
{
    if (opts && opts->encoder) return avcodec_find_encoder_by_name(opts->encoder);
    const AVCodec *c = avcodec_find_encoder_by_name("libx264");
    if (c) return c;
    c = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (c) {
        fy_warn("%s: libx264 is not available; encoding with libavcodec's \"%s\" instead", w->path, c->name);
        return c;
    }
    c = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (c) fy_warn("%s: no H.264 encoder in this libavcodec; writing MPEG-4 Part 2 video instead", w->path);
    return c;
}

static fy_status open_encoder(mp4_writer *w, int fps, const fy_video_options *opts)
{
    const AVCodec *codec = pick_encoder(w, opts);
    if (!codec)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: no video encoder%s%s%s found in libavcodec", w->path,
                        opts && opts->encoder ? " named \"" : "", opts && opts->encoder ? opts->encoder : "",
                        opts && opts->encoder ? "\"" : "");
    AVCodecContext *c = w->codec = avcodec_alloc_context3(codec);
    if (!c) return fy_error(FY_ERR_NOMEM, "%s: out of memory", w->path);
    c->width = w->out_width;
    c->height = w->out_height;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = (AVRational){1, fps};
    c->framerate = (AVRational){fps, 1};
    c->gop_size = fps * 2;
    c->color_range = AVCOL_RANGE_MPEG;
    c->colorspace = AVCOL_SPC_SMPTE170M; /* swscale's default RGB->YUV matrix is BT.601 */
    c->color_primaries = AVCOL_PRI_SMPTE170M;
    c->color_trc = AVCOL_TRC_SMPTE170M;
    if (w->fmt->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int crf = opts && opts->crf >= 0 ? opts->crf : DEFAULT_CRF;
    if (opts && opts->bitrate > 0) {
        c->bit_rate = opts->bitrate;
    } else if (!strcmp(codec->name, "libx264")) {
        char value[16];
        snprintf(value, sizeof value, "%d", crf);
        av_opt_set(c->priv_data, "crf", value, 0);
        av_opt_set(c->priv_data, "preset", "medium", 0);
    } else {
        /* No crf outside x264: a generous bitrate for the frame size. */
        c->bit_rate = (int64_t)w->out_width * w->out_height * fps / 2 + 200000;
    }
    int err = avcodec_open2(c, codec, NULL);
    if (err < 0) return av_fail(w, codec->name, err);
    w->stream = avformat_new_stream(w->fmt, NULL);
    if (!w->stream) return fy_error(FY_ERR_NOMEM, "%s: out of memory", w->path);
    w->stream->time_base = c->time_base;
    w->stream->avg_frame_rate = c->framerate;
    err = avcodec_parameters_from_context(w->stream->codecpar, c);
    return err < 0 ? av_fail(w, "stream parameters", err) : FY_OK;
}

static fy_status open_output(mp4_writer *w, const char *tmp_path, int fps, const fy_video_options *opts)
{
    /* The muxer is named, so the temporary name's extension does not matter. */
    int err = avformat_alloc_output_context2(&w->fmt, NULL, "mp4", tmp_path);
    if (err < 0 || !w->fmt) return av_fail(w, "mp4 muxer", err < 0 ? err : AVERROR_MUXER_NOT_FOUND);
    FY_TRY(open_encoder(w, fps, opts));
    err = avio_open(&w->fmt->pb, tmp_path, AVIO_FLAG_WRITE);
    if (err < 0) return av_fail(w, "cannot create the file", err);
    /* The index up front, so players can start before the whole file arrives. */
    AVDictionary *mux_opts = NULL;
    const char *const *meta = opts ? opts->metadata : NULL;
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2) av_dict_set(&w->fmt->metadata, meta[i], meta[i + 1], 0);
    /* use_metadata_tags: keys beyond the few the muxer knows (prompt, seed). */
    av_dict_set(&mux_opts, "movflags", meta ? "+faststart+use_metadata_tags" : "+faststart", 0);
    err = avformat_write_header(w->fmt, &mux_opts);
    av_dict_free(&mux_opts);
    if (err < 0) return av_fail(w, "writing the header", err);
    w->frame = av_frame_alloc();
    w->packet = av_packet_alloc();
    if (!w->frame || !w->packet) return fy_error(FY_ERR_NOMEM, "%s: out of memory", w->path);
    w->frame->format = AV_PIX_FMT_YUV420P;
    w->frame->width = w->out_width;
    w->frame->height = w->out_height;
    err = av_frame_get_buffer(w->frame, 0);
    if (err < 0) return av_fail(w, "frame buffer", err);
    w->sws = sws_getContext(w->out_width, w->out_height, AV_PIX_FMT_RGB24, w->out_width, w->out_height,
                            AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL,
                            NULL);
    if (!w->sws) return fy_error(FY_ERR_INTERNAL, "%s: swscale cannot convert RGB24 to YUV420P", w->path);
    return FY_OK;
}

/* Moves every packet the encoder has ready into the file. */
static fy_status drain(mp4_writer *w)
{
    for (;;) {
        int err = avcodec_receive_packet(w->codec, w->packet);
        if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return FY_OK;
        if (err < 0) return av_fail(w, "encoding", err);
        av_packet_rescale_ts(w->packet, w->codec->time_base, w->stream->time_base);
        w->packet->stream_index = w->stream->index;
        err = av_interleaved_write_frame(w->fmt, w->packet);
        if (err < 0) return av_fail(w, "writing", err);
    }
}

/* The frame's RGB rows, with a replicated last column/row when padded. */
static const uint8_t *even_rgb(mp4_writer *w, const uint8_t *rgb)
{
    if (!w->padded) return rgb;
    size_t src_row = (size_t)w->width * 3, dst_row = (size_t)w->out_width * 3;
    for (int y = 0; y < w->out_height; y++) {
        const uint8_t *src = rgb + (size_t)(y < w->height ? y : w->height - 1) * src_row;
        uint8_t *dst = w->padded + (size_t)y * dst_row;
        memcpy(dst, src, src_row);
        if (w->out_width > w->width) memcpy(dst + src_row, src + src_row - 3, 3);
    }
    return w->padded;
}

static fy_status encode_frame(mp4_writer *w, const float *frame, int64_t pts)
{
    int err = av_frame_make_writable(w->frame);
    if (err < 0) return av_fail(w, "frame buffer", err);
    fy_video_to_u8_trunc(frame, (size_t)w->width * (size_t)w->height * 3u, w->rgb);
    const uint8_t *src[1] = {even_rgb(w, w->rgb)};
    int stride[1] = {w->out_width * 3};
    sws_scale(w->sws, src, stride, 0, w->out_height, w->frame->data, w->frame->linesize);
    w->frame->pts = pts;
    err = avcodec_send_frame(w->codec, w->frame);
    if (err < 0) return av_fail(w, "encoding", err);
    return drain(w);
}

static fy_status finish(mp4_writer *w)
{
    int err = avcodec_send_frame(w->codec, NULL);
    if (err < 0) return av_fail(w, "flushing the encoder", err);
    FY_TRY(drain(w));
    err = av_write_trailer(w->fmt);
    if (err < 0) return av_fail(w, "writing the trailer", err);
    err = avio_closep(&w->fmt->pb);
    return err < 0 ? av_fail(w, "closing the file", err) : FY_OK;
}

static void close_writer(mp4_writer *w)
{
    if (w->fmt && w->fmt->pb) avio_closep(&w->fmt->pb);
    avformat_free_context(w->fmt);
    avcodec_free_context(&w->codec);
    sws_freeContext(w->sws);
    av_frame_free(&w->frame);
    av_packet_free(&w->packet);
    free(w->rgb);
    free(w->padded);
}

fy_status fy_mp4_write(const char *path, const char *tmp_path, const float *video, int frames, int height,
                       int width, int fps, const fy_video_options *opts)
{
    mp4_writer w = {.path = path, .width = width, .height = height};
    w.rgb = malloc((size_t)width * (size_t)height * 3u);
    if (!w.rgb) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    /* yuv420p halves chroma both ways: the encoders need even sides. */
    w.out_width = width + (width & 1);
    w.out_height = height + (height & 1);
    if (w.out_width != width || w.out_height != height) {
        fy_warn("%s: %dx%d is odd-sized; padding to %dx%d for yuv420p", path, width, height, w.out_width,
                w.out_height);
        w.padded = malloc((size_t)w.out_width * (size_t)w.out_height * 3u);
        if (!w.padded) {
            free(w.rgb);
            return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    /* x264 and the muxer report every file at info level; keep stderr for ferry's own lines. */
    if (fy_log_get_level() < FY_LOG_DEBUG && av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);
    fy_status s = open_output(&w, tmp_path, fps, opts);
    size_t frame_values = (size_t)width * (size_t)height * 3u;
    for (int i = 0; s == FY_OK && i < frames; i++) {
        s = fy_video_check_stop(path, opts);
        if (s == FY_OK) s = encode_frame(&w, video + (size_t)i * frame_values, i);
    }
    if (s == FY_OK) s = finish(&w);
    close_writer(&w);
    return s;
}

#else /* !FERRY_HAVE_LIBAV */

fy_status fy_mp4_write(const char *path, const char *tmp_path, const float *video, int frames, int height,
                       int width, int fps, const fy_video_options *opts)
{
    (void)tmp_path, (void)video, (void)frames, (void)height, (void)width, (void)fps, (void)opts;
    return fy_error(FY_ERR_UNSUPPORTED, "%s: this ferry was built without libavformat/libavcodec", path);
}

#endif
