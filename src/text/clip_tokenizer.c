/* CLIP's byte-level BPE tokenizer (see ferry/clip_tokenizer.h). */
#include "ferry/clip_tokenizer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ferry/config.h"
#include "ferry/prompt.h"
#include "io/str_map.h"

#ifdef FERRY_HAVE_ICU
#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>
#endif

/* transformers reads merges.txt lines [1, 49152 - 256 - 2 + 1): the header
 * is skipped and at most this many merges are used. */
#define MAX_MERGES (49152 - 256 - 2)

struct fy_clip_tokenizer {
    fy_str_map vocab;  /* token -> id */
    fy_str_map ranks;  /* "first second" -> merge rank */
    char byte_sym[256][4]; /* GPT-2 bytes_to_unicode, as UTF-8 */
    char *special[2];  /* bos, eos strings (split off the raw text) */
    int64_t bos, eos, pad, unk;
    int max_length;
    int vocab_size;
};

/* ---- files ---------------------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static fy_status read_text(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fy_error(FY_ERR_NOT_FOUND, "%s: cannot open (the CLIP tokenizer needs it)", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb, cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0) break;
        n += got;
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    if (err) {
        free(buf);
        return fy_error(FY_ERR_IO, "%s: read failed", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return FY_OK;
}

static fy_status load_vocab(fy_clip_tokenizer *t, const char *dir)
{
    char *path = join(dir, "vocab.json"), *text = NULL;
    if (!path) return fy_error(FY_ERR_NOMEM, "out of memory");
    size_t len = 0;
    fy_status s = read_text(path, &text, &len);
    cJSON *root = s == FY_OK ? cJSON_ParseWithLength(text, len) : NULL;
    if (s == FY_OK && !cJSON_IsObject(root)) s = fy_error(FY_ERR_FORMAT, "%s: not a JSON object of token ids", path);
    for (const cJSON *it = root ? root->child : NULL; s == FY_OK && it; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e9 || !it->string)
            s = fy_error(FY_ERR_FORMAT, "%s: token \"%s\" has no valid id", path, it->string ? it->string : "");
        else s = fy_str_map_put(&t->vocab, it->string, strlen(it->string), (int64_t)it->valuedouble);
        if (s == FY_OK && (int)it->valuedouble >= t->vocab_size) t->vocab_size = (int)it->valuedouble + 1;
    }
    cJSON_Delete(root);
    free(text);
    free(path);
    return s;
}

/* One merges.txt line "first second" (whitespace-separated, as split()). */
static fy_status add_merge(fy_clip_tokenizer *t, const char *path, char *line, int rank)
{
    char *save = NULL, *a = strtok_r(line, " \t\r", &save), *b = strtok_r(NULL, " \t\r", &save);
    if (!a || !b || strtok_r(NULL, " \t\r", &save))
        return fy_error(FY_ERR_FORMAT, "%s: merge %d is not two symbols", path, rank + 1);
    size_t la = strlen(a), lb = strlen(b);
    char *key = malloc(la + lb + 2);
    if (!key) return fy_error(FY_ERR_NOMEM, "out of memory");
    memcpy(key, a, la);
    key[la] = ' ';
    memcpy(key + la + 1, b, lb + 1);
    fy_status s = fy_str_map_has(&t->ranks, key, la + lb + 1) ? FY_OK
                                                               : fy_str_map_put(&t->ranks, key, la + lb + 1, rank);
    free(key);
    return s;
}

static fy_status load_merges(fy_clip_tokenizer *t, const char *dir)
{
    char *path = join(dir, "merges.txt"), *text = NULL;
    if (!path) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_status s = read_text(path, &text, NULL);
    char *save = NULL, *line = s == FY_OK ? strtok_r(text, "\n", &save) : NULL;
    int rank = -1; /* line 0 is the "#version" header */
    for (; s == FY_OK && line && rank < MAX_MERGES; line = strtok_r(NULL, "\n", &save), rank++) {
        if (rank < 0) continue;
        s = add_merge(t, path, line, rank);
    }
    free(text);
    free(path);
    return s;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * rest to 256 + n in byte order. */
static void byte_symbols(fy_clip_tokenizer *t)
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        unsigned cp = keep ? (unsigned)b : 256u + (unsigned)n++;
        char *o = t->byte_sym[b];
        if (cp < 0x80) o[0] = (char)cp, o[1] = 0;
        else o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), o[2] = 0;
    }
}

static fy_status token_id(const fy_clip_tokenizer *t, const char *dir, const char *tok, int64_t *out)
{
    if (fy_str_map_get(&t->vocab, tok, strlen(tok), out)) return FY_OK;
    return fy_error(FY_ERR_FORMAT, "%s/vocab.json: the special token \"%s\" has no id", dir, tok);
}

/* A special token in tokenizer_config.json: a string or {"content": ...}. */
static const char *config_token(const fy_config *cfg, const char *key, const char *def)
{
    const char *v = NULL;
    if (cfg && fy_config_has(cfg, key) && fy_config_string(cfg, key, &v) == FY_OK) return v;
    fy_error_clear();
    return def;
}

static fy_status load_specials(fy_clip_tokenizer *t, const char *dir)
{
    char *path = join(dir, "tokenizer_config.json");
    if (!path) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_config *cfg = NULL;
    FILE *probe = fopen(path, "rb");
    fy_status s = FY_OK;
    if (probe) {
        fclose(probe);
        s = fy_config_load(path, &cfg);
    }
    free(path);
    FY_TRY(s);
    const char *bos = config_token(cfg, "bos_token", "<|startoftext|>");
    const char *eos = config_token(cfg, "eos_token", "<|endoftext|>");
    const char *pad = config_token(cfg, "pad_token", "<|endoftext|>");
    const char *unk = config_token(cfg, "unk_token", "<|endoftext|>");
    int64_t max_len = 77;
    if (cfg && fy_config_int_or(cfg, "model_max_length", 77, &max_len) != FY_OK) max_len = 77;
    fy_error_clear();
    t->max_length = max_len >= 2 && max_len <= 1 << 20 ? (int)max_len : 77;
    s = token_id(t, dir, bos, &t->bos);
    if (s == FY_OK) s = token_id(t, dir, eos, &t->eos);
    if (s == FY_OK) s = token_id(t, dir, pad, &t->pad);
    if (s == FY_OK) s = token_id(t, dir, unk, &t->unk);
    if (s == FY_OK) {
        t->special[0] = strdup(bos);
        t->special[1] = strdup(eos);
        if (!t->special[0] || !t->special[1]) s = fy_error(FY_ERR_NOMEM, "out of memory");
    }
    fy_config_free(cfg);
    return s;
}

fy_status fy_clip_tokenizer_load(const char *dir, fy_clip_tokenizer **out)
{
    if (!dir || !out) return fy_error(FY_ERR_INVALID, "fy_clip_tokenizer_load: NULL argument");
    *out = NULL;
#ifndef FERRY_HAVE_ICU
    return fy_error(FY_ERR_UNSUPPORTED, "%s: the CLIP tokenizer needs ICU (libicu-dev); rebuild ferry with it", dir);
#else
    fy_clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return fy_error(FY_ERR_NOMEM, "out of memory");
    byte_symbols(t);
    fy_status s = load_vocab(t, dir);
    if (s == FY_OK) s = load_merges(t, dir);
    if (s == FY_OK) s = load_specials(t, dir);
    if (s != FY_OK) {
        fy_clip_tokenizer_free(t);
        return s;
    }
    *out = t;
    return FY_OK;
#endif
}

void fy_clip_tokenizer_free(fy_clip_tokenizer *t)
{
    if (!t) return;
    fy_str_map_free(&t->vocab);
    fy_str_map_free(&t->ranks);
    free(t->special[0]);
    free(t->special[1]);
    free(t);
}

int fy_clip_tokenizer_vocab_size(const fy_clip_tokenizer *t) { return t->vocab_size; }
int fy_clip_tokenizer_max_length(const fy_clip_tokenizer *t) { return t->max_length; }
int64_t fy_clip_tokenizer_bos_id(const fy_clip_tokenizer *t) { return t->bos; }
int64_t fy_clip_tokenizer_eos_id(const fy_clip_tokenizer *t) { return t->eos; }
int64_t fy_clip_tokenizer_pad_id(const fy_clip_tokenizer *t) { return t->pad; }

/* ---- ids --------------------------------------------------------------------- */

typedef struct id_list {
    int64_t *v;
    size_t n, cap;
} id_list;

static fy_status push_id(id_list *l, int64_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = id;
    return FY_OK;
}

#ifdef FERRY_HAVE_ICU

/* ---- BPE ---------------------------------------------------------------------- */

typedef struct word {
    char **sym;
    size_t n;
} word;

static void word_free(word *w)
{
    for (size_t i = 0; i < w->n; i++) free(w->sym[i]);
    free(w->sym);
}

static int64_t pair_rank(const fy_clip_tokenizer *t, const char *a, const char *b, char *key)
{
    size_t la = strlen(a), lb = strlen(b);
    memcpy(key, a, la);
    key[la] = ' ';
    memcpy(key + la + 1, b, lb);
    int64_t r = -1;
    return fy_str_map_get(&t->ranks, key, la + lb + 1, &r) ? r : -1;
}

/* Merges every occurrence of the best-ranked pair, left to right; false when no pair has a rank. */
static bool merge_best(const fy_clip_tokenizer *t, word *w, char *key)
{
    int64_t best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < w->n; i++) {
        int64_t r = pair_rank(t, w->sym[i], w->sym[i + 1], key);
        if (r >= 0 && (best < 0 || r < best)) best = r, at = i;
    }
    if (best < 0) return false;
    char *first = strdup(w->sym[at]), *second = strdup(w->sym[at + 1]);
    size_t o = 0;
    for (size_t i = 0; i < w->n;) {
        if (first && second && i + 1 < w->n && !strcmp(w->sym[i], first) && !strcmp(w->sym[i + 1], second)) {
            size_t la = strlen(w->sym[i]), lb = strlen(w->sym[i + 1]);
            char *m = realloc(w->sym[i], la + lb + 1);
            if (!m) break;
            memcpy(m + la, w->sym[i + 1], lb + 1);
            free(w->sym[i + 1]);
            w->sym[o++] = m;
            i += 2;
        } else {
            w->sym[o++] = w->sym[i++];
        }
    }
    w->n = o;
    free(first);
    free(second);
    return true;
}

/* One regex word (UTF-8 bytes) through the byte symbols and BPE into ids. */
static fy_status bpe_word(const fy_clip_tokenizer *t, const char *bytes, size_t len, id_list *ids)
{
    word w = {calloc(len, sizeof(char *)), 0};
    size_t total = 0;
    fy_status s = w.sym ? FY_OK : fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; s == FY_OK && i < len; i++) {
        const char *sym = t->byte_sym[(unsigned char)bytes[i]];
        size_t extra = i + 1 == len ? 4 : 0; /* "</w>" on the last symbol */
        w.sym[i] = malloc(strlen(sym) + extra + 1);
        if (!w.sym[i]) s = fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
        else snprintf(w.sym[i], strlen(sym) + extra + 1, "%s%s", sym, extra ? "</w>" : ""), w.n++;
        total += strlen(sym) + extra + 1;
    }
    char *key = s == FY_OK ? malloc(total + 2) : NULL;
    if (s == FY_OK && !key) s = fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
    while (s == FY_OK && w.n > 1 && merge_best(t, &w, key)) {
    }
    for (size_t i = 0; s == FY_OK && i < w.n; i++) {
        int64_t id = t->unk;
        fy_str_map_get(&t->vocab, w.sym[i], strlen(w.sym[i]), &id);
        s = push_id(ids, id);
    }
    free(key);
    word_free(&w);
    return s;
}

/* ---- text clean-up and the regex ----------------------------------------------- */

/* Python's str.isspace(): category Zs or bidirectional class WS, B or S. */
static bool py_space(UChar32 c)
{
    if (u_charType(c) == U_SPACE_SEPARATOR) return true;
    UCharDirection d = u_charDirection(c);
    return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR;
}

static bool is_letter(UChar32 c)
{
    int8_t k = u_charType(c);
    return k == U_UPPERCASE_LETTER || k == U_LOWERCASE_LETTER || k == U_TITLECASE_LETTER ||
           k == U_MODIFIER_LETTER || k == U_OTHER_LETTER;
}

static bool is_number(UChar32 c)
{
    int8_t k = u_charType(c);
    return k == U_DECIMAL_DIGIT_NUMBER || k == U_LETTER_NUMBER || k == U_OTHER_NUMBER;
}

/* Python's str.lower(): ICU's full lower-casing in the root locale (final
 * sigma included). Lower-casing can grow the text (U+0130 -> 2 code units),
 * so each conversion asks for its size first. */
static fy_status icu_lower(const char *text, int32_t n, char **out)
{
    UErrorCode err = U_ZERO_ERROR;
    int32_t n16 = 0, nlow = 0, n8 = 0;
    u_strFromUTF8WithSub(NULL, 0, &n16, text, n, 0xFFFD, NULL, &err);
    err = U_ZERO_ERROR;
    UChar *u16 = malloc(((size_t)n16 + 1) * sizeof(UChar));
    if (u16) u_strFromUTF8WithSub(u16, n16 + 1, NULL, text, n, 0xFFFD, NULL, &err);
    if (u16 && U_SUCCESS(err)) nlow = u_strToLower(NULL, 0, u16, n16, "", &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) err = U_ZERO_ERROR;
    UChar *low = u16 && U_SUCCESS(err) ? malloc(((size_t)nlow + 1) * sizeof(UChar)) : NULL;
    if (low) u_strToLower(low, nlow + 1, u16, n16, "", &err);
    if (low && U_SUCCESS(err)) u_strToUTF8(NULL, 0, &n8, low, nlow, &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) err = U_ZERO_ERROR;
    char *res = low && U_SUCCESS(err) ? malloc((size_t)n8 + 1) : NULL;
    if (res) u_strToUTF8(res, n8 + 1, NULL, low, nlow, &err);
    free(u16);
    free(low);
    if (!res || U_FAILURE(err)) {
        free(res);
        return fy_error(FY_ERR_NOMEM, "tokenizer: lower-casing failed (out of memory?)");
    }
    res[n8] = 0;
    *out = res;
    return FY_OK;
}

/* whitespace runs -> one space, stripped, then str.lower(). */
static fy_status clean_lower(const char *text, char **out)
{
    size_t n = strlen(text);
    char *ws = malloc(n + 1);
    if (!ws) return fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
    size_t o = 0;
    bool pending = false;
    for (int32_t i = 0; i < (int32_t)n;) {
        int32_t start = i;
        UChar32 c;
        U8_NEXT(text, i, (int32_t)n, c);
        if (c >= 0 && py_space(c)) {
            pending = o > 0;
            continue;
        }
        if (pending) ws[o++] = ' ', pending = false;
        memcpy(ws + o, text + start, (size_t)(i - start));
        o += (size_t)(i - start);
    }
    ws[o] = 0;
    fy_status s = icu_lower(ws, (int32_t)o, out);
    free(ws);
    return s;
}

static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};

/* Length in bytes of the regex match at text[i], 0 when the character is
 * skipped (whitespace). Alternatives are tried in the pattern's order. */
static int32_t match_at(const fy_clip_tokenizer *t, const char *text, int32_t n, int32_t i)
{
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(t->special[k]);
        if ((size_t)(n - i) >= l && !memcmp(text + i, t->special[k], l)) return (int32_t)l;
    }
    for (size_t k = 0; k < sizeof contractions / sizeof contractions[0]; k++) {
        size_t l = strlen(contractions[k]);
        if ((size_t)(n - i) >= l && !strncasecmp(text + i, contractions[k], l)) return (int32_t)l;
    }
    int32_t j = i;
    UChar32 c;
    U8_NEXT(text, j, n, c);
    if (c < 0) c = 0xFFFD;
    if (is_letter(c)) {
        for (int32_t k = j; k < n; j = k) {
            U8_NEXT(text, k, n, c);
            if (c < 0 || !is_letter(c)) break;
        }
        return j - i;
    }
    if (is_number(c)) return j - i;
    if (u_isUWhiteSpace(c)) return 0;
    for (int32_t k = j; k < n; j = k) {
        U8_NEXT(text, k, n, c);
        if (c >= 0 && (is_letter(c) || is_number(c) || u_isUWhiteSpace(c))) break;
    }
    return j - i;
}

/* One chunk of text between special tokens: clean-up, regex, BPE. */
static fy_status tokenize_chunk(const fy_clip_tokenizer *t, const char *chunk, size_t len, id_list *ids)
{
    char *raw = strndup(chunk, len), *fixed = NULL, *text = NULL;
    if (!raw) return fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
    fy_status s = fy_ftfy_fix_text(raw, &fixed);
    if (s == FY_OK) s = clean_lower(fixed, &text);
    int32_t n = text ? (int32_t)strlen(text) : 0;
    for (int32_t i = 0; s == FY_OK && i < n;) {
        int32_t m = match_at(t, text, n, i);
        if (m == 0) {
            UChar32 c;
            U8_NEXT(text, i, n, c);
            (void)c;
            continue;
        }
        s = bpe_word(t, text + i, (size_t)m, ids);
        i += m;
    }
    free(raw);
    free(fixed);
    free(text);
    return s;
}

/* The added-token split: literal special strings become their ids. */
static fy_status tokenize_text(const fy_clip_tokenizer *t, const char *text, id_list *ids)
{
    const char *p = text;
    while (*p) {
        const char *hit = NULL;
        int which = 0;
        for (int k = 0; k < 2; k++) {
            const char *h = strstr(p, t->special[k]);
            if (h && (!hit || h < hit)) hit = h, which = k;
        }
        size_t len = hit ? (size_t)(hit - p) : strlen(p);
        if (len) FY_TRY(tokenize_chunk(t, p, len, ids));
        if (!hit) break;
        FY_TRY(push_id(ids, which ? t->eos : t->bos));
        p = hit + strlen(t->special[which]);
    }
    return FY_OK;
}

#else
static fy_status tokenize_text(const fy_clip_tokenizer *t, const char *text, id_list *ids)
{
    (void)t, (void)text, (void)ids;
    return fy_error(FY_ERR_UNSUPPORTED, "the CLIP tokenizer needs ICU (libicu-dev)");
}
#endif

fy_status fy_clip_tokenizer_tokenize(const fy_clip_tokenizer *t, const char *text, int64_t **ids, size_t *n)
{
    if (!t || !text || !ids || !n) return fy_error(FY_ERR_INVALID, "fy_clip_tokenizer_tokenize: NULL argument");
    id_list l = {0};
    fy_status s = push_id(&l, t->bos);
    if (s == FY_OK) s = tokenize_text(t, text, &l);
    if (s == FY_OK) s = push_id(&l, t->eos);
    if (s != FY_OK) {
        free(l.v);
        return s;
    }
    *ids = l.v;
    *n = l.n;
    return FY_OK;
}

fy_status fy_clip_tokenizer_encode(const fy_clip_tokenizer *t, const char *text, int max_len, int64_t *ids,
                                   int *n_real, int *n_dropped)
{
    if (!t || !text || !ids || max_len < 2)
        return fy_error(FY_ERR_INVALID, "fy_clip_tokenizer_encode: need a tokenizer, text and max_len >= 2");
    int64_t *all = NULL;
    size_t n = 0;
    FY_TRY(fy_clip_tokenizer_tokenize(t, text, &all, &n));
    size_t content = n - 2, keep = content < (size_t)max_len - 2 ? content : (size_t)max_len - 2;
    ids[0] = t->bos;
    memcpy(ids + 1, all + 1, keep * sizeof *ids);
    ids[keep + 1] = t->eos;
    for (size_t i = keep + 2; i < (size_t)max_len; i++) ids[i] = t->pad;
    free(all);
    if (n_real) *n_real = (int)keep + 2;
    if (n_dropped) *n_dropped = (int)(content - keep);
    return FY_OK;
}
