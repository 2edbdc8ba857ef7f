/* diffusers' Wan prompt_clean (see ferry/prompt.h for what is reproduced).
 * Text is handled as an array of code points so that every step can follow
 * its Python original character by character. */
#include "ferry/prompt.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/prompt_tables.inc"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
/* ftfy loops until nothing changes. A pass that changes something either
 * shortens the text (entities) or settles it for good (the other fixers), so
 * length + a few passes always suffice; the bound only guards against a bug
 * turning into a hang. */
#define FTFY_EXTRA_PASSES 16

typedef struct cps {
    uint32_t *v;
    size_t n, cap;
    bool oom;
} cps;

static void cps_push(cps *t, uint32_t c)
{
    if (t->oom) return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        uint32_t *v = realloc(t->v, cap * sizeof(uint32_t));
        if (!v) {
            t->oom = true;
            return;
        }
        t->v = v, t->cap = cap;
    }
    t->v[t->n++] = c;
}

static void cps_push_range(cps *t, const uint32_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) cps_push(t, v[i]);
}

static void cps_free(cps *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* One code point from s (len bytes left); *used gets the bytes consumed.
 * A malformed sequence gives one U+FFFD for its longest valid prefix (at
 * least one byte), as Python's errors="replace" does. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *used)
{
    *used = 1;
    unsigned c = s[0];
    if (c < 0x80) return c;
    size_t extra;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) extra = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) extra = 2, cp = c & 0x0F, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) extra = 3, cp = c & 0x07, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return 0xFFFD;
    for (size_t i = 1; i <= extra; i++) {
        unsigned b = i < len ? s[i] : 0;
        bool ok = i == 1 ? b >= lo && b <= hi : (b & 0xC0) == 0x80;
        if (!ok) {
            *used = i;
            return 0xFFFD;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    *used = extra + 1;
    return cp;
}

static void push_utf8(cps *t, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    while (len) {
        size_t used;
        cps_push(t, utf8_next(p, len, &used));
        p += used, len -= used;
    }
}

static size_t utf8_put(uint32_t c, char *o)
{
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | (c >> 6)), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)), o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)), o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static fy_status cps_to_utf8(const cps *t, char **out)
{
    char *s = malloc(t->n * 4 + 1);
    if (!s) return fy_error(FY_ERR_NOMEM, "prompt: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) k += utf8_put(t->v[i], s + k);
    s[k] = '\0';
    *out = s;
    return FY_OK;
}

/* ---- Table lookups ------------------------------------------------------- */

static int entity_cmp(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const fy_entity *)elem)->name);
}

static const char *entity_find(const fy_entity *table, size_t n, const char *name)
{
    const fy_entity *e = bsearch(name, table, n, sizeof *table, entity_cmp);
    return e ? e->value : NULL;
}

/* Code points [v, v+n) as an ASCII C string in buf (size > n); false if not ASCII. */
static bool ascii_name(const uint32_t *v, size_t n, char *buf)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] >= 0x80) return false;
        buf[i] = (char)v[i];
    }
    buf[n] = '\0';
    return true;
}

static const char *html5_lookup(const uint32_t *v, size_t n)
{
    char buf[64];
    if (n >= sizeof buf || !ascii_name(v, n, buf)) return NULL;
    return entity_find(fy_html5_entities, COUNT(fy_html5_entities), buf);
}

static int cp_map_cmp(const void *key, const void *elem)
{
    uint32_t k = *(const uint32_t *)key, c = ((const fy_cp_map *)elem)->cp;
    return k < c ? -1 : k > c;
}

static const char *cp_map_find(const fy_cp_map *table, size_t n, uint32_t cp)
{
    const fy_cp_map *e = bsearch(&cp, table, n, sizeof *table, cp_map_cmp);
    return e ? e->value : NULL;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static bool u32_in(const uint32_t *table, size_t n, uint32_t cp)
{
    return bsearch(&cp, table, n, sizeof *table, u32_cmp) != NULL;
}

static bool py_isspace(uint32_t c)
{
    return u32_in(fy_py_spaces, COUNT(fy_py_spaces), c);
}

static bool is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static bool is_hex(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static bool is_alpha(uint32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_alnum(uint32_t c) { return is_digit(c) || is_alpha(c); }

/* ---- Python's html.unescape ----------------------------------------------- */

/* The character a numeric reference names, pushed onto out (maybe nothing). */
static void push_numeric_ref(cps *out, const uint32_t *digits, size_t n, int base)
{
    uint64_t num = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = digits[i];
        unsigned d = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
        num = num * (uint64_t)base + d;
        if (num > 0x10FFFF) num = 0x110000; /* saturate: anything larger is invalid alike */
    }
    const char *repl = cp_map_find(fy_invalid_charrefs, COUNT(fy_invalid_charrefs), (uint32_t)num);
    if (repl) return push_utf8(out, repl);
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return cps_push(out, 0xFFFD);
    if (u32_in(fy_invalid_codepoints, COUNT(fy_invalid_codepoints), (uint32_t)num)) return;
    cps_push(out, (uint32_t)num);
}

static bool named_ref_char(uint32_t c)
{
    return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

/* Tries html's _charref at v[i] == '&'; on a match pushes the replacement and
 * returns the code points consumed, else 0. */
static size_t unescape_at(const uint32_t *v, size_t n, size_t i, cps *out)
{
    size_t j = i + 1;
    if (j < n && v[j] == '#') {
        size_t k = j + 1;
        int base = 10;
        if (k < n && (v[k] == 'x' || v[k] == 'X') && k + 1 < n && is_hex(v[k + 1])) base = 16, k++;
        size_t start = k;
        while (k < n && (base == 16 ? is_hex(v[k]) : is_digit(v[k]))) k++;
        if (k == start) return 0;
        push_numeric_ref(out, v + start, k - start, base);
        if (k < n && v[k] == ';') k++;
        return k - i;
    }
    size_t k = j;
    while (k < n && k - j < 32 && named_ref_char(v[k])) k++;
    if (k == j) return 0;
    if (k < n && v[k] == ';') k++;
    size_t len = k - j; /* the name, with its ';' if any */
    const char *value = html5_lookup(v + j, len);
    if (value) {
        push_utf8(out, value);
        return k - i;
    }
    for (size_t x = len - 1; x > 1; x--) {
        value = html5_lookup(v + j, x);
        if (value) {
            push_utf8(out, value);
            cps_push_range(out, v + j + x, len - x);
            return k - i;
        }
    }
    cps_push_range(out, v + i, k - i);
    return k - i;
}

static void html_unescape(const cps *in, cps *out)
{
    for (size_t i = 0; i < in->n;) {
        size_t used = in->v[i] == '&' ? unescape_at(in->v, in->n, i, out) : 0;
        if (used) {
            i += used;
        } else {
            cps_push(out, in->v[i++]);
        }
    }
}


/* ---- NFC (Unicode normalization form C) ------------------------------------ */

enum { HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7 };
enum { HANGUL_LCOUNT = 19, HANGUL_VCOUNT = 21, HANGUL_TCOUNT = 28 };
enum { HANGUL_NCOUNT = HANGUL_VCOUNT * HANGUL_TCOUNT, HANGUL_SCOUNT = HANGUL_LCOUNT * HANGUL_NCOUNT };

static int decomp_cmp(const void *key, const void *elem)
{
    uint32_t k = *(const uint32_t *)key, c = ((const fy_decomp *)elem)->cp;
    return k < c ? -1 : k > c;
}

static int ccc_cmp(const void *key, const void *elem)
{
    uint32_t k = *(const uint32_t *)key, c = ((const fy_ccc *)elem)->cp;
    return k < c ? -1 : k > c;
}

static int compose_cmp(const void *key, const void *elem)
{
    uint64_t k = *(const uint64_t *)key, c = ((const fy_compose *)elem)->key;
    return k < c ? -1 : k > c;
}

static unsigned combining_class(uint32_t c)
{
    if (c < 0x300) return 0;
    const fy_ccc *e = bsearch(&c, fy_ccc_table, COUNT(fy_ccc_table), sizeof *fy_ccc_table, ccc_cmp);
    return e ? e->ccc : 0;
}

static void decompose_cp(uint32_t c, cps *out)
{
    if (c >= HANGUL_S && c < HANGUL_S + HANGUL_SCOUNT) {
        uint32_t s = c - HANGUL_S;
        cps_push(out, HANGUL_L + s / HANGUL_NCOUNT);
        cps_push(out, HANGUL_V + (s % HANGUL_NCOUNT) / HANGUL_TCOUNT);
        if (s % HANGUL_TCOUNT) cps_push(out, HANGUL_T + s % HANGUL_TCOUNT);
        return;
    }
    const fy_decomp *d =
        c < 0xC0 ? NULL : bsearch(&c, fy_nfd_table, COUNT(fy_nfd_table), sizeof *fy_nfd_table, decomp_cmp);
    if (!d) return cps_push(out, c);
    decompose_cp(d->first, out); /* decompositions nest a few levels at most */
    if (d->second) decompose_cp(d->second, out);
}

static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LCOUNT && b >= HANGUL_V && b < HANGUL_V + HANGUL_VCOUNT)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TCOUNT)
        return a + (b - HANGUL_T);
    uint64_t key = ((uint64_t)a << 21) | b;
    const fy_compose *e = bsearch(&key, fy_nfc_table, COUNT(fy_nfc_table), sizeof *fy_nfc_table, compose_cmp);
    return e ? e->cp : 0;
}

/* Stable sort of each run of non-starters by combining class. */
static void canonical_order(cps *t)
{
    for (size_t i = 1; i < t->n; i++) {
        uint32_t c = t->v[i];
        unsigned cc = combining_class(c);
        if (cc == 0) continue;
        size_t j = i;
        while (j > 0 && combining_class(t->v[j - 1]) > cc) {
            t->v[j] = t->v[j - 1];
            j--;
        }
        t->v[j] = c;
    }
}

/* UAX #15 canonical composition, in place. */
static void canonical_compose(cps *t)
{
    if (t->n == 0) return;
    size_t starter = 0, n = 1;
    unsigned last = combining_class(t->v[0]);
    bool have_starter = last == 0;
    if (last != 0) last = 256; /* a leading mark blocks everything after it */
    for (size_t i = 1; i < t->n; i++) {
        uint32_t c = t->v[i];
        unsigned cc = combining_class(c);
        uint32_t composite = have_starter && (last < cc || last == 0) ? compose_pair(t->v[starter], c) : 0;
        if (composite) {
            t->v[starter] = composite;
            continue;
        }
        if (cc == 0) starter = n, have_starter = true;
        last = cc;
        t->v[n++] = c;
    }
    t->n = n;
}

static void nfc(const cps *in, cps *out)
{
    for (size_t i = 0; i < in->n; i++) decompose_cp(in->v[i], out);
    if (out->oom) return;
    canonical_order(out);
    canonical_compose(out);
}

/* ---- ftfy.fix_text (the subset in ferry/prompt.h) --------------------------- */

/* ftfy.fixes.unescape_html: only "&#?[0-9A-Za-z]{1,24};" and only when the
 * whole match is decoded. */
static void ftfy_unescape_html(const cps *in, cps *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const uint32_t *v = in->v;
        if (v[i] != '&') {
            cps_push(out, v[i]);
            continue;
        }
        size_t j = i + 1;
        bool numeric = j < in->n && v[j] == '#';
        if (numeric) j++;
        size_t k = j;
        while (k < in->n && k - j < 25 && is_alnum(v[k])) k++;
        if (k == j || k - j > 24 || k >= in->n || v[k] != ';') {
            cps_push(out, v[i]);
            continue;
        }
        /* The match is v[i..k]. */
        char name[32];
        const char *value = NULL;
        if (!numeric && ascii_name(v + j, k - j + 1, name)) {
            value = entity_find(fy_html5_entities, COUNT(fy_html5_entities), name);
            if (!value) value = entity_find(fy_ftfy_upper_entities, COUNT(fy_ftfy_upper_entities), name);
        }
        if (value) {
            push_utf8(out, value);
            i = k;
            continue;
        }
        if (numeric) {
            cps entity = {0}, decoded = {0};
            cps_push_range(&entity, v + i, k - i + 1);
            html_unescape(&entity, &decoded);
            bool partial = entity.oom || decoded.oom;
            for (size_t d = 0; d < decoded.n && !partial; d++) partial = decoded.v[d] == ';';
            if (!partial) {
                cps_push_range(out, decoded.v, decoded.n);
                i = k;
            } else {
                cps_push(out, v[i]);
            }
            cps_free(&entity), cps_free(&decoded);
            continue;
        }
        cps_push(out, v[i]);
    }
}

/* One code point -> replacement text, or NULL to keep it. */
static const char *ligature(uint32_t c)
{
    switch (c) {
    case 0x132: return "IJ";
    case 0x133: return "ij";
    case 0x149: return "\xCA\xBCn"; /* U+02BC n */
    case 0x1F1: return "DZ";
    case 0x1F2: return "Dz";
    case 0x1F3: return "dz";
    case 0x1C4: return "D\xC5\xBD";
    case 0x1C5: return "D\xC5\xBE";
    case 0x1C6: return "d\xC5\xBE";
    case 0x1C7: return "LJ";
    case 0x1C8: return "Lj";
    case 0x1C9: return "lj";
    case 0x1CA: return "NJ";
    case 0x1CB: return "Nj";
    case 0x1CC: return "nj";
    case 0xFB00: return "ff";
    case 0xFB01: return "fi";
    case 0xFB02: return "fl";
    case 0xFB03: return "ffi";
    case 0xFB04: return "ffl";
    case 0xFB05: return "\xC5\xBFt"; /* U+017F t */
    case 0xFB06: return "st";
    default: return NULL;
    }
}

static bool ftfy_control_char(uint32_t c)
{
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC) || (c >= 0x1D173 && c <= 0x1D17A) ||
           (c >= 0xE0000 && c <= 0xE007F);
}

/* The per-character fixers, in ftfy's order, each over the whole text. */
typedef enum char_fix { FIX_C1, FIX_LIGATURES, FIX_WIDTH, FIX_QUOTES, FIX_CONTROL } char_fix;

static void apply_char_fix(char_fix fix, const cps *in, cps *out)
{
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        const char *repl = NULL;
        switch (fix) {
        case FIX_C1:
            if (c >= 0x80 && c <= 0x9F) repl = cp_map_find(fy_invalid_charrefs, COUNT(fy_invalid_charrefs), c);
            break;
        case FIX_LIGATURES: repl = ligature(c); break;
        case FIX_WIDTH: repl = cp_map_find(fy_width_map, COUNT(fy_width_map), c); break;
        case FIX_QUOTES:
            if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
            else if (c >= 0x201C && c <= 0x201F) c = '"';
            break;
        case FIX_CONTROL:
            if (ftfy_control_char(c)) continue;
            break;
        }
        if (repl) push_utf8(out, repl);
        else cps_push(out, c);
    }
}

static void fix_line_breaks(const cps *in, cps *out)
{
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c == '\r' && i + 1 < in->n && in->v[i + 1] == '\n') continue;
        cps_push(out, (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) ? '\n' : c);
    }
}

/* "\033[" then digits and ';' then one letter. */
static void remove_terminal_escapes(const cps *in, cps *out)
{
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i] == 0x1B && i + 1 < in->n && in->v[i + 1] == '[') {
            size_t k = i + 2;
            while (k < in->n && (is_digit(in->v[k]) || in->v[k] == ';')) k++;
            if (k < in->n && is_alpha(in->v[k])) {
                i = k;
                continue;
            }
        }
        cps_push(out, in->v[i]);
    }
}

typedef void (*text_fix)(const cps *in, cps *out);

/* Replace *t by fix(*t). */
static bool run_fix(cps *t, text_fix fix)
{
    cps out = {0};
    fix(t, &out);
    if (out.oom) {
        cps_free(&out);
        return false;
    }
    cps_free(t);
    *t = out;
    return true;
}

static bool run_char_fix(cps *t, char_fix which)
{
    cps out = {0};
    apply_char_fix(which, t, &out);
    if (out.oom) {
        cps_free(&out);
        return false;
    }
    cps_free(t);
    *t = out;
    return true;
}

/* ftfy.fix_and_explain on one segment (normalization="NFC", its default). */
static bool fix_segment(cps *t, bool unescape)
{
    size_t passes = t->n + FTFY_EXTRA_PASSES;
    for (size_t pass = 0; pass < passes; pass++) {
        cps before = {0};
        cps_push_range(&before, t->v, t->n);
        if (before.oom) return false;
        bool ok = (!unescape || run_fix(t, ftfy_unescape_html)) && run_char_fix(t, FIX_C1) &&
                  run_char_fix(t, FIX_LIGATURES) && run_char_fix(t, FIX_WIDTH) && run_char_fix(t, FIX_QUOTES) &&
                  run_fix(t, fix_line_breaks) && run_fix(t, remove_terminal_escapes) &&
                  run_char_fix(t, FIX_CONTROL) && run_fix(t, nfc);
        bool same = ok && before.n == t->n && (t->n == 0 || !memcmp(before.v, t->v, t->n * sizeof(uint32_t)));
        cps_free(&before);
        if (!ok) return false;
        if (same) return true;
    }
    return true;
}

/* ftfy.fix_text: lines (with their '\n') are fixed one by one; once a line
 * holds '<' the "auto" HTML rule stays off for the rest of the text. */
static bool ftfy_fix_text(const cps *in, cps *out)
{
    bool unescape = true;
    for (size_t pos = 0; pos < in->n;) {
        size_t end = pos;
        while (end < in->n && in->v[end] != '\n') end++;
        if (end < in->n) end++;
        cps seg = {0};
        cps_push_range(&seg, in->v + pos, end - pos);
        for (size_t i = 0; i < seg.n && unescape; i++)
            if (seg.v[i] == '<') unescape = false;
        bool ok = !seg.oom && fix_segment(&seg, unescape);
        if (ok) cps_push_range(out, seg.v, seg.n);
        cps_free(&seg);
        if (!ok) return false;
        pos = end;
    }
    return !out->oom;
}

/* ---- whitespace ---------------------------------------------------------- */

/* str.strip() then re.sub(r"\s+", " ") then strip(): runs of Python
 * whitespace become one space, none at either end. */
static void whitespace_clean(const cps *in, cps *out)
{
    bool pending = false;
    for (size_t i = 0; i < in->n; i++) {
        if (py_isspace(in->v[i])) {
            pending = out->n > 0;
            continue;
        }
        if (pending) cps_push(out, ' ');
        pending = false;
        cps_push(out, in->v[i]);
    }
}

/* ---- Public -------------------------------------------------------------- */

static fy_status decode_input(const char *text, cps *t)
{
    if (!text) return fy_error(FY_ERR_INVALID, "prompt: no text");
    push_utf8(t, text);
    if (t->oom) {
        cps_free(t);
        return fy_error(FY_ERR_NOMEM, "prompt: out of memory");
    }
    return FY_OK;
}

static fy_status finish(cps *t, bool ok, char **out)
{
    fy_status s = ok && !t->oom ? cps_to_utf8(t, out) : fy_error(FY_ERR_NOMEM, "prompt: out of memory");
    cps_free(t);
    return s;
}

fy_status fy_html_unescape(const char *text, char **out)
{
    cps t = {0};
    FY_TRY(decode_input(text, &t));
    return finish(&t, run_fix(&t, html_unescape), out);
}

fy_status fy_unicode_nfc(const char *text, char **out)
{
    cps t = {0};
    FY_TRY(decode_input(text, &t));
    return finish(&t, run_fix(&t, nfc), out);
}

fy_status fy_ftfy_fix_text(const char *text, char **out)
{
    cps t = {0}, fixed = {0};
    FY_TRY(decode_input(text, &t));
    bool ok = ftfy_fix_text(&t, &fixed);
    cps_free(&t);
    return finish(&fixed, ok, out);
}

fy_status fy_prompt_clean(const char *text, char **out)
{
    cps t = {0}, fixed = {0};
    FY_TRY(decode_input(text, &t));
    bool ok = ftfy_fix_text(&t, &fixed);
    cps_free(&t);
    ok = ok && run_fix(&fixed, html_unescape) && run_fix(&fixed, html_unescape) &&
         run_fix(&fixed, whitespace_clean);
    return finish(&fixed, ok, out);
}
