/* WanPipeline's _get_t5_prompt_embeds: tokenize, encode, keep each prompt's
 * real tokens and zero the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "ferry/umt5.h"

static fy_status tokenize_all(const fy_tokenizer *tok, const char *const *texts, const char *const *labels, int n,
                              int max_len, int64_t *ids, int64_t *mask, int *n_real)
{
    for (int i = 0; i < n; i++) {
        int dropped = 0;
        size_t at = (size_t)i * (size_t)max_len;
        FY_TRY(fy_tokenizer_encode(tok, texts[i] ? texts[i] : "", max_len, ids + at, mask + at, &n_real[i],
                                   &dropped));
        if (dropped == 0) continue;
        char label[32];
        if (labels) snprintf(label, sizeof label, "%s", labels[i]);
        else snprintf(label, sizeof label, "text %d", i);
        fy_warn("%s: %d token%s past max_sequence_length %d %s dropped (truncated)", label, dropped,
                dropped == 1 ? "" : "s", max_len, dropped == 1 ? "was" : "were");
    }
    return FY_OK;
}

static void zero_padding(float *embeds, const int *n_real, int n, int max_len, int64_t d)
{
    for (int i = 0; i < n; i++) {
        float *rows = embeds + (size_t)i * (size_t)max_len * (size_t)d;
        memset(rows + (size_t)n_real[i] * (size_t)d, 0, (size_t)(max_len - n_real[i]) * (size_t)d * sizeof *rows);
    }
}

fy_status fy_umt5_encode_prompts(fy_umt5 *m, const fy_tokenizer *tok, const char *const *texts,
                                 const char *const *labels, int n, int max_len, float *embeds, int64_t *ids,
                                 int64_t *mask, int *n_real)
{
    if (!m || !tok || !texts || n < 1 || !embeds)
        return fy_error(FY_ERR_INVALID, "fy_umt5_encode_prompts: NULL argument or no prompt");
    if (max_len < 1) return fy_error(FY_ERR_INVALID, "max_sequence_length %d: must be at least 1", max_len);
    size_t cells = (size_t)n * (size_t)max_len;
    int64_t *own_ids = ids ? NULL : malloc(cells * sizeof *own_ids);
    int64_t *own_mask = mask ? NULL : malloc(cells * sizeof *own_mask);
    int *own_real = n_real ? NULL : malloc((size_t)n * sizeof *own_real);
    ids = ids ? ids : own_ids;
    mask = mask ? mask : own_mask;
    n_real = n_real ? n_real : own_real;
    fy_status s = ids && mask && n_real ? FY_OK : fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    if (s == FY_OK) s = tokenize_all(tok, texts, labels, n, max_len, ids, mask, n_real);
    if (s == FY_OK) s = fy_umt5_forward(m, ids, mask, n, max_len, embeds, NULL);
    if (s == FY_OK) zero_padding(embeds, n_real, n, max_len, fy_umt5_get_config(m)->d_model);
    free(own_ids);
    free(own_mask);
    free(own_real);
    return s;
}
