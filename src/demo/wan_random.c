/* A random-weight Wan2.1 T2V model folder (see ferry/wan_random.h): the
 * configs diffusers and transformers write, a tokenizer trained here, and
 * generated weights. */
#include "ferry/wan_random.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/tokenizer.h"
#include "demo/wan_random_internal.h"

/* ---- presets ----------------------------------------------------------------- */

typedef struct preset {
    const char *name;
    fy_wan_random_params p;
} preset;

/* The full-size rows copy Wan-AI/Wan2.1-T2V-{1.3B,14B}-Diffusers' configs
 * (UMT5-XXL text encoder, base_dim 96 VAE); the demo is small enough to write
 * and run in seconds on 2 cores, with 8 blocks so streaming is visible. */
static const preset presets[] = {
    {"demo", {.seed = 0, .dtype = FY_BF16, .dit_layers = 8, .dit_heads = 6, .dit_head_dim = 64,
              .dit_ffn_dim = 1536, .dit_freq_dim = 64, .te_layers = 2, .te_heads = 4, .te_d_kv = 16,
              .te_d_model = 64, .te_d_ff = 128, .te_vocab = 0, .tokenizer_vocab = 384, .vae_base_dim = 8,
              .vae_num_res_blocks = 2}},
    {"wan2.1-1.3b", {.seed = 0, .dtype = FY_BF16, .dit_layers = 30, .dit_heads = 12, .dit_head_dim = 128,
                     .dit_ffn_dim = 8960, .dit_freq_dim = 256, .te_layers = 24, .te_heads = 64, .te_d_kv = 64,
                     .te_d_model = 4096, .te_d_ff = 10240, .te_vocab = 256384, .tokenizer_vocab = 384,
                     .vae_base_dim = 96, .vae_num_res_blocks = 2}},
    {"wan2.1-14b", {.seed = 0, .dtype = FY_BF16, .dit_layers = 40, .dit_heads = 40, .dit_head_dim = 128,
                    .dit_ffn_dim = 13824, .dit_freq_dim = 256, .te_layers = 24, .te_heads = 64, .te_d_kv = 64,
                    .te_d_model = 4096, .te_d_ff = 10240, .te_vocab = 256384, .tokenizer_vocab = 384,
                    .vae_base_dim = 96, .vae_num_res_blocks = 2}},
    /* Wan2.2 T2V-A14B: two experts of the 14B's config; the demo's sizes twice. */
    {"wan2.2-demo", {.seed = 0, .dtype = FY_BF16, .dit_layers = 8, .dit_heads = 6, .dit_head_dim = 64,
                     .dit_ffn_dim = 1536, .dit_freq_dim = 64, .te_layers = 2, .te_heads = 4, .te_d_kv = 16,
                     .te_d_model = 64, .te_d_ff = 128, .te_vocab = 0, .tokenizer_vocab = 384, .vae_base_dim = 8,
                     .vae_num_res_blocks = 2, .boundary_ratio = 0.875}},
    {"wan2.2-a14b", {.seed = 0, .dtype = FY_BF16, .dit_layers = 40, .dit_heads = 40, .dit_head_dim = 128,
                     .dit_ffn_dim = 13824, .dit_freq_dim = 256, .te_layers = 24, .te_heads = 64, .te_d_kv = 64,
                     .te_d_model = 4096, .te_d_ff = 10240, .te_vocab = 256384, .tokenizer_vocab = 384,
                     .vae_base_dim = 96, .vae_num_res_blocks = 2, .boundary_ratio = 0.875}},
};

#define PRESET_COUNT (sizeof presets / sizeof presets[0])

const char *fy_wan_random_preset_names(void)
{
    return "demo, wan2.1-1.3b, wan2.1-14b, wan2.2-demo, wan2.2-a14b";
}

fy_status fy_wan_random_preset(const char *name, fy_wan_random_params *out)
{
    for (size_t i = 0; name && i < PRESET_COUNT; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            *out = presets[i].p;
            return FY_OK;
        }
    }
    return fy_error(FY_ERR_INVALID, "random model preset \"%s\": use one of %s", name ? name : "(null)",
                    fy_wan_random_preset_names());
}

static fy_status check_params(const fy_wan_random_params *p)
{
    int sizes[] = {p->dit_layers, p->dit_heads, p->dit_head_dim, p->dit_ffn_dim, p->dit_freq_dim, p->te_layers,
                   p->te_heads, p->te_d_kv, p->te_d_model, p->te_d_ff, p->vae_base_dim, p->vae_num_res_blocks};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i] < 1 || sizes[i] > (1 << 20))
            return fy_error(FY_ERR_INVALID, "random model: every size must be from 1 to 2^20");
    if (p->dit_head_dim % 2 || p->dit_freq_dim % 2)
        return fy_error(FY_ERR_INVALID, "random model: dit_head_dim and dit_freq_dim must be even (rotary and "
                                        "sinusoidal embeddings pair their channels)");
    if (p->tokenizer_vocab < 64 || p->tokenizer_vocab > 1 << 20)
        return fy_error(FY_ERR_INVALID, "random model: tokenizer_vocab %d: use 64 or more", p->tokenizer_vocab);
    if (!(p->boundary_ratio >= 0 && p->boundary_ratio <= 1))
        return fy_error(FY_ERR_INVALID, "random model: boundary_ratio %g: use 0 (one transformer) to 1",
                        p->boundary_ratio);
    if (p->dtype != FY_F32 && p->dtype != FY_BF16 && p->dtype != FY_F16)
        return fy_error(FY_ERR_INVALID, "random model: dtype %s; use f32, bf16 or f16", fy_dtype_name(p->dtype));
    return FY_OK;
}

/* ---- files ------------------------------------------------------------------- */

/* Everything the writer creates, so a failed write (or the demo's cleanup)
 * removes exactly these and never anything else in the folder. */
static const char *const written_files[] = {
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/spiece.model",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "transformer_2/config.json",
    "transformer_2/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
};
static const char *const written_dirs[] = {"scheduler", "tokenizer", "text_encoder", "transformer", "vae",
                                           "transformer_2"};
/* transformer_2 is written only for two experts */
#define ONE_EXPERT_DIRS 5

typedef struct path_buf {
    char p[PATH_MAX];
} path_buf;

static fy_status join(path_buf *b, const char *dir, const char *rel)
{
    int n = snprintf(b->p, sizeof b->p, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= sizeof b->p) return fy_error(FY_ERR_INVALID, "%s: path too long", dir);
    return FY_OK;
}

static fy_status write_text(const char *dir, const char *rel, const char *text)
{
    path_buf b;
    FY_TRY(join(&b, dir, rel));
    FILE *f = fopen(b.p, "w");
    if (!f) return fy_error(FY_ERR_IO, "%s: cannot create: %s", b.p, strerror(errno));
    bool ok = fputs(text, f) >= 0;
    ok = fclose(f) == 0 && ok;
    return ok ? FY_OK : fy_error(FY_ERR_IO, "%s: write failed", b.p);
}

void fy_wan_random_remove(const char *dir)
{
    if (!dir) return;
    path_buf b;
    for (size_t i = 0; i < sizeof written_files / sizeof written_files[0]; i++)
        if (join(&b, dir, written_files[i]) == FY_OK) unlink(b.p);
    for (size_t i = 0; i < sizeof written_dirs / sizeof written_dirs[0]; i++)
        if (join(&b, dir, written_dirs[i]) == FY_OK) rmdir(b.p);
    rmdir(dir); /* only when empty: nothing of the user's goes */
}

static fy_status make_dirs(const char *dir, bool two_experts)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return fy_error(FY_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    path_buf b;
    size_t n = two_experts ? sizeof written_dirs / sizeof written_dirs[0] : ONE_EXPERT_DIRS;
    for (size_t i = 0; i < n; i++) {
        FY_TRY(join(&b, dir, written_dirs[i]));
        if (mkdir(b.p, 0755) != 0)
            return fy_error(FY_ERR_IO, "%s: cannot create: %s", b.p, strerror(errno));
    }
    return FY_OK;
}

/* ---- configs ------------------------------------------------------------------ */

static fy_status write_model_index(const char *dir, const fy_wan_random_params *p)
{
    char boundary[32] = "null", expert_2[64] = "[null, null]";
    if (p->boundary_ratio > 0) {
        snprintf(boundary, sizeof boundary, "%.17g", p->boundary_ratio);
        snprintf(expert_2, sizeof expert_2, "[\"diffusers\", \"WanTransformer3DModel\"]");
    }
    char text[1024];
    snprintf(text, sizeof text,
             "{\n  \"_class_name\": \"WanPipeline\",\n  \"_diffusers_version\": \"0.33.0\",\n"
             "  \"boundary_ratio\": %s,\n  \"expand_timesteps\": false,\n"
             "  \"scheduler\": [\"diffusers\", \"UniPCMultistepScheduler\"],\n"
             "  \"text_encoder\": [\"transformers\", \"UMT5EncoderModel\"],\n"
             "  \"tokenizer\": [\"transformers\", \"T5Tokenizer\"],\n"
             "  \"transformer\": [\"diffusers\", \"WanTransformer3DModel\"],\n"
             "  \"transformer_2\": %s,\n"
             "  \"vae\": [\"diffusers\", \"AutoencoderKLWan\"]\n}\n",
             boundary, expert_2);
    return write_text(dir, "model_index.json", text);
}

/* Wan2.1-T2V-*-Diffusers' scheduler: UniPC with flow sigmas, shift 3.0 (480p). */
static const char scheduler_json[] =
    "{\n  \"_class_name\": \"UniPCMultistepScheduler\",\n  \"_diffusers_version\": \"0.33.0\",\n"
    "  \"beta_end\": 0.02,\n  \"beta_schedule\": \"linear\",\n  \"beta_start\": 0.0001,\n"
    "  \"disable_corrector\": [],\n  \"dynamic_thresholding_ratio\": 0.995,\n  \"final_sigmas_type\": \"zero\",\n"
    "  \"flow_shift\": 3.0,\n  \"lower_order_final\": true,\n  \"num_train_timesteps\": 1000,\n"
    "  \"predict_x0\": true,\n  \"prediction_type\": \"flow_prediction\",\n  \"rescale_betas_zero_snr\": false,\n"
    "  \"sample_max_value\": 1.0,\n  \"solver_order\": 2,\n  \"solver_p\": null,\n  \"solver_type\": \"bh2\",\n"
    "  \"steps_offset\": 0,\n  \"thresholding\": false,\n  \"time_shift_type\": \"exponential\",\n"
    "  \"timestep_spacing\": \"linspace\",\n  \"trained_betas\": null,\n  \"use_beta_sigmas\": false,\n"
    "  \"use_dynamic_shifting\": false,\n  \"use_exponential_sigmas\": false,\n  \"use_flow_sigmas\": true,\n"
    "  \"use_karras_sigmas\": false\n}\n";

#define SPECIAL_TOKEN(piece)                                                                                    \
    "{\"content\": \"" piece "\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "               \
    "\"single_word\": false"

static const char tokenizer_config_json[] =
    "{\n  \"add_prefix_space\": true,\n  \"added_tokens_decoder\": {\n"
    "    \"0\": " SPECIAL_TOKEN("<pad>") ", \"special\": true},\n"
    "    \"1\": " SPECIAL_TOKEN("</s>") ", \"special\": true},\n"
    "    \"2\": " SPECIAL_TOKEN("<unk>") ", \"special\": true}\n  },\n"
    "  \"additional_special_tokens\": [],\n  \"clean_up_tokenization_spaces\": false,\n"
    "  \"eos_token\": \"</s>\",\n  \"extra_ids\": 0,\n  \"legacy\": true,\n  \"model_max_length\": 512,\n"
    "  \"pad_token\": \"<pad>\",\n  \"sp_model_kwargs\": {},\n  \"tokenizer_class\": \"T5Tokenizer\",\n"
    "  \"unk_token\": \"<unk>\"\n}\n";

static const char special_tokens_json[] =
    "{\n  \"eos_token\": " SPECIAL_TOKEN("</s>") "},\n  \"pad_token\": " SPECIAL_TOKEN("<pad>") "},\n"
    "  \"unk_token\": " SPECIAL_TOKEN("<unk>") "}\n}\n";

static fy_status write_text_encoder_config(const char *dir, const fy_wan_random_params *p, int vocab)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\n  \"architectures\": [\"UMT5EncoderModel\"],\n  \"classifier_dropout\": 0.0,\n  \"d_ff\": %d,\n"
             "  \"d_kv\": %d,\n  \"d_model\": %d,\n  \"decoder_start_token_id\": 0,\n"
             "  \"dense_act_fn\": \"gelu_new\",\n  \"dropout_rate\": 0.1,\n  \"eos_token_id\": 1,\n"
             "  \"feed_forward_proj\": \"gated-gelu\",\n  \"initializer_factor\": 1.0,\n"
             "  \"is_encoder_decoder\": true,\n  \"is_gated_act\": true,\n  \"layer_norm_epsilon\": 1e-06,\n"
             "  \"model_type\": \"umt5\",\n  \"num_decoder_layers\": %d,\n  \"num_heads\": %d,\n"
             "  \"num_layers\": %d,\n  \"output_past\": true,\n  \"pad_token_id\": 0,\n"
             "  \"relative_attention_max_distance\": 128,\n  \"relative_attention_num_buckets\": 32,\n"
             "  \"scalable_attention\": true,\n  \"tie_word_embeddings\": false,\n"
             "  \"tokenizer_class\": \"T5Tokenizer\",\n  \"torch_dtype\": \"%s\",\n"
             "  \"transformers_version\": \"4.48.0\",\n  \"use_cache\": true,\n  \"vocab_size\": %d\n}\n",
             p->te_d_ff, p->te_d_kv, p->te_d_model, p->te_layers, p->te_heads, p->te_layers,
             p->dtype == FY_F32 ? "float32" : p->dtype == FY_F16 ? "float16" : "bfloat16", vocab);
    return write_text(dir, "text_encoder/config.json", text);
}

static fy_status write_transformer_config(const char *dir, const fy_wan_random_params *p, const char *rel)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\n  \"_class_name\": \"WanTransformer3DModel\",\n  \"_diffusers_version\": \"0.33.0\",\n"
             "  \"added_kv_proj_dim\": null,\n  \"attention_head_dim\": %d,\n  \"cross_attn_norm\": true,\n"
             "  \"eps\": 1e-06,\n  \"ffn_dim\": %d,\n  \"freq_dim\": %d,\n  \"image_dim\": null,\n"
             "  \"in_channels\": 16,\n  \"num_attention_heads\": %d,\n  \"num_layers\": %d,\n"
             "  \"out_channels\": 16,\n  \"patch_size\": [1, 2, 2],\n  \"pos_embed_seq_len\": null,\n"
             "  \"qk_norm\": \"rms_norm_across_heads\",\n  \"rope_max_seq_len\": 1024,\n  \"text_dim\": %d\n}\n",
             p->dit_head_dim, p->dit_ffn_dim, p->dit_freq_dim, p->dit_heads, p->dit_layers, p->te_d_model);
    return write_text(dir, rel, text);
}

/* Wan2.1's VAE: the real latents_mean / latents_std, so de-normalising the
 * latents scales them as for a real model. */
static fy_status write_vae_config(const char *dir, const fy_wan_random_params *p)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\n  \"_class_name\": \"AutoencoderKLWan\",\n  \"_diffusers_version\": \"0.33.0\",\n"
             "  \"attn_scales\": [],\n  \"base_dim\": %d,\n  \"dim_mult\": [1, 2, 4, 4],\n  \"dropout\": 0.0,\n"
             "  \"latents_mean\": [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,\n"
             "                   0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],\n"
             "  \"latents_std\": [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,\n"
             "                  3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916],\n"
             "  \"num_res_blocks\": %d,\n  \"temperal_downsample\": [false, true, true],\n  \"z_dim\": 16\n}\n",
             p->vae_base_dim, p->vae_num_res_blocks);
    return write_text(dir, "vae/config.json", text);
}

/* ---- the folder ---------------------------------------------------------------- */

static int round_up(int n, int m)
{
    return (n + m - 1) / m * m;
}

static fy_status write_tokenizer(const char *dir, const fy_wan_random_params *p, int *pieces)
{
    path_buf b;
    FY_TRY(join(&b, dir, "tokenizer/spiece.model"));
    FY_TRY(fy_tokenizer_train(fy_wan_random_corpus, fy_wan_random_corpus_count, p->tokenizer_vocab, b.p, pieces));
    FY_TRY(write_text(dir, "tokenizer/tokenizer_config.json", tokenizer_config_json));
    return write_text(dir, "tokenizer/special_tokens_map.json", special_tokens_json);
}

/* Never write into (or clean up) a folder that holds anything already. */
static fy_status check_empty(const char *dir, bool *existed)
{
    struct stat st;
    *existed = stat(dir, &st) == 0;
    if (!*existed) return FY_OK;
    if (!S_ISDIR(st.st_mode)) return fy_error(FY_ERR_INVALID, "%s: exists and is not a folder", dir);
    DIR *d = opendir(dir);
    if (!d) return fy_error(FY_ERR_IO, "%s: cannot read: %s", dir, strerror(errno));
    bool empty = true;
    for (struct dirent *e; empty && (e = readdir(d));) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    if (!empty) return fy_error(FY_ERR_INVALID, "%s: not empty; the random model goes into an empty or new folder", dir);
    return FY_OK;
}

static fy_status write_all(const char *dir, const fy_wan_random_params *p)
{
    int pieces = 0;
    path_buf b;
    bool two = p->boundary_ratio > 0;
    FY_TRY(make_dirs(dir, two));
    FY_TRY(write_model_index(dir, p));
    FY_TRY(write_text(dir, "scheduler/scheduler_config.json", scheduler_json));
    FY_TRY(write_tokenizer(dir, p, &pieces));
    int vocab = p->te_vocab > 0 ? p->te_vocab : round_up(pieces, 64);
    if (vocab < pieces)
        return fy_error(FY_ERR_INVALID, "random model: te_vocab %d is below the tokenizer's %d pieces", vocab, pieces);
    FY_TRY(write_text_encoder_config(dir, p, vocab));
    FY_TRY(join(&b, dir, "text_encoder/model.safetensors"));
    FY_TRY(rnd_write_text_encoder(p, vocab, b.p));
    FY_TRY(write_transformer_config(dir, p, "transformer/config.json"));
    FY_TRY(join(&b, dir, "transformer/diffusion_pytorch_model.safetensors"));
    FY_TRY(rnd_write_transformer(p, 0, b.p));
    if (two) {
        FY_TRY(write_transformer_config(dir, p, "transformer_2/config.json"));
        FY_TRY(join(&b, dir, "transformer_2/diffusion_pytorch_model.safetensors"));
        FY_TRY(rnd_write_transformer(p, 1, b.p));
    }
    FY_TRY(write_vae_config(dir, p));
    FY_TRY(join(&b, dir, "vae/diffusion_pytorch_model.safetensors"));
    return rnd_write_vae(p, b.p);
}

fy_status fy_wan_random_write(const fy_wan_random_params *p, const char *dir)
{
    if (!p || !dir || !dir[0]) return fy_error(FY_ERR_INVALID, "fy_wan_random_write: NULL argument");
    FY_TRY(check_params(p));
    bool existed = false;
    FY_TRY(check_empty(dir, &existed));
    fy_status s = write_all(dir, p);
    if (s != FY_OK) {
        fy_wan_random_remove(dir);
        if (existed) mkdir(dir, 0755); /* the folder was the caller's: only its new contents go */
    }
    return s;
}
