/* The original Wan tensor names (Wan-AI's own checkpoints, ComfyUI's
 * repackaged single files, GGUF quantisations of them) and the diffusers /
 * transformers names ferry's models load, both ways, from one table per
 * component (src/io/wan_names.c). diffusers' from_single_file conversion for
 * Wan is the reference. No tensor needs more than a new name: every shape and
 * layout is the same on both sides.
 *
 *   transformer   blocks.0.self_attn.q.weight    blocks.0.attn1.to_q.weight
 *                 head.head.weight               proj_out.weight
 *                 (ComfyUI's "model.diffusion_model." prefix is dropped)
 *   vae           decoder.upsamples.4.shortcut.weight
 *                                      decoder.up_blocks.1.resnets.0.conv_shortcut.weight
 *                 conv1.weight                   quant_conv.weight
 *   text_encoder  blocks.0.attn.q.weight (Wan's T5) or the transformers names
 *                 (ComfyUI's UMT5 files)         encoder.block.0.layer.0.SelfAttention.q.weight */
#ifndef FERRY_WAN_NAMES_H
#define FERRY_WAN_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_wan_part {
    FY_WAN_TRANSFORMER = 0,  /* WanTransformer3DModel */
    FY_WAN_VAE,              /* AutoencoderKLWan (Wan2.1's VAE: two residual blocks per level) */
    FY_WAN_TEXT_ENCODER,     /* UMT5EncoderModel */
    FY_WAN_PART_COUNT
} fy_wan_part;

const char *fy_wan_part_name(fy_wan_part part);   /* "transformer", "vae", "text_encoder" */

/* The diffusers name of an original one into out. FY_ERR_NOT_FOUND (no
 * message set) when `original` is no tensor name of part; FY_ERR_INVALID when
 * out is too small. A name already in the diffusers layout maps to itself
 * for the text encoder only (ComfyUI keeps the transformers names there). */
fy_status fy_wan_name_to_diffusers(fy_wan_part part, const char *original, char *out, size_t size);
/* The inverse: the original (Wan) name of a diffusers one; the text
 * encoder's are Wan's T5 names. Same errors. */
fy_status fy_wan_name_from_diffusers(fy_wan_part part, const char *diffusers, char *out, size_t size);

/* Tensors a single file may hold beside the weights that map to nothing:
 * ComfyUI's fp8 markers ("scaled_fp8", "*.scale_input"). */
bool fy_wan_name_ignored(const char *original);

#ifdef __cplusplus
}
#endif
#endif
