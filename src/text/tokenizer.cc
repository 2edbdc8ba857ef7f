/* The tokenizer is the one C++ file in ferry: libsentencepiece is a C++
 * library. Everything here is wrapped so that no exception reaches C. */
#include "ferry/tokenizer.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#ifdef FERRY_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include "io/regular_file.h"

/* The special tokens T5Tokenizer registers as added tokens. transformers
 * splits the text at their literal spellings before sentencepiece sees it,
 * so "a</s>b" yields the eos id, not the pieces of "<", "/", "s", ">". */
static const char *const k_special_pieces[] = {"<pad>", "</s>", "<unk>"};
enum { k_special_count = 3 };

struct fy_tokenizer {
    sentencepiece::SentencePieceProcessor sp;
    int64_t special_ids[k_special_count];
    int64_t pad_id;
    int64_t eos_id;
};

/* Real sentencepiece models are a few MiB; the cap keeps a link to
 * /dev/zero or a huge wrong file from being read without end. */
static const uint64_t k_model_max_bytes = 256ull << 20;

static fy_status load_model(fy_tokenizer *tok, const std::string &path)
{
    /* Read here, not by sentencepiece: a FIFO or device is refused before any read. */
    char *bytes = nullptr;
    size_t len = 0;
    FY_TRY(fy_read_regular(path.c_str(), k_model_max_bytes, "a sentencepiece model", &bytes, &len));
    sentencepiece::util::Status st;
    try {
        st = tok->sp.LoadFromSerializedProto(absl::string_view(bytes, len));
    } catch (...) {
        std::free(bytes);
        throw;
    }
    std::free(bytes);
    if (!st.ok())
        return fy_error(FY_ERR_FORMAT, "%s: not a valid sentencepiece model (%s)", path.c_str(),
                        st.ToString().c_str());
    for (int i = 0; i < k_special_count; i++) {
        int id = tok->sp.PieceToId(k_special_pieces[i]);
        /* PieceToId answers the unk id for an unknown piece. */
        bool known = tok->sp.IdToPiece(id) == k_special_pieces[i];
        tok->special_ids[i] = known ? id : -1;
    }
    tok->pad_id = tok->special_ids[0];
    tok->eos_id = tok->special_ids[1];
    if (tok->pad_id < 0 || tok->eos_id < 0)
        return fy_error(FY_ERR_FORMAT, "%s: the model has no <pad> or </s> piece (not a T5 tokenizer)",
                        path.c_str());
    return FY_OK;
}

extern "C" fy_status fy_tokenizer_load(const char *dir, fy_tokenizer **out)
{
    *out = nullptr;
    if (!dir) return fy_error(FY_ERR_INVALID, "tokenizer: no folder given");
    fy_tokenizer *tok = nullptr;
    try {
        std::string path = std::string(dir) + "/spiece.model";
        struct stat st;
        if (stat(path.c_str(), &st) != 0 && errno == ENOENT)
            return fy_error(FY_ERR_NOT_FOUND,
                            "%s: not found (the tokenizer folder must hold the sentencepiece model spiece.model)",
                            path.c_str());
        tok = new fy_tokenizer();
        fy_status s = load_model(tok, path);
        if (s != FY_OK) {
            delete tok;
            return s;
        }
    } catch (const std::bad_alloc &) {
        delete tok;
        return fy_error(FY_ERR_NOMEM, "%s/spiece.model: out of memory loading the tokenizer", dir);
    } catch (...) {
        delete tok;
        return fy_error(FY_ERR_FORMAT, "%s/spiece.model: not a valid sentencepiece model", dir);
    }
    *out = tok;
    return FY_OK;
}

extern "C" void fy_tokenizer_free(fy_tokenizer *tok)
{
    delete tok;
}

extern "C" int fy_tokenizer_vocab_size(const fy_tokenizer *tok)
{
    return tok->sp.GetPieceSize();
}

extern "C" int64_t fy_tokenizer_pad_id(const fy_tokenizer *tok)
{
    return tok->pad_id;
}

extern "C" int64_t fy_tokenizer_eos_id(const fy_tokenizer *tok)
{
    return tok->eos_id;
}

/* Index of the special token spelled at text[pos], or -1. */
static int special_at(const fy_tokenizer *tok, const std::string &text, size_t pos)
{
    for (int i = 0; i < k_special_count; i++) {
        if (tok->special_ids[i] < 0) continue;
        if (text.compare(pos, std::strlen(k_special_pieces[i]), k_special_pieces[i]) == 0) return i;
    }
    return -1;
}

static fy_status encode_chunk(const fy_tokenizer *tok, const std::string &chunk, std::vector<int64_t> &ids)
{
    if (chunk.empty()) return FY_OK;
    std::vector<int> piece_ids;
    sentencepiece::util::Status st = tok->sp.Encode(chunk, &piece_ids);
    if (!st.ok()) return fy_error(FY_ERR_INVALID, "tokenizer: cannot encode text (%s)", st.ToString().c_str());
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    return FY_OK;
}

/* The content ids, before truncation and eos (PreTrainedTokenizer.tokenize
 * followed by convert_tokens_to_ids). */
static fy_status encode_content(const fy_tokenizer *tok, const std::string &text, std::vector<int64_t> &ids)
{
    size_t start = 0;
    for (size_t pos = 0; pos < text.size();) {
        int sp = special_at(tok, text, pos);
        if (sp < 0) {
            pos++;
            continue;
        }
        FY_TRY(encode_chunk(tok, text.substr(start, pos - start), ids));
        ids.push_back(tok->special_ids[sp]);
        pos += std::strlen(k_special_pieces[sp]);
        start = pos;
    }
    return encode_chunk(tok, text.substr(start), ids);
}

static void finish_ids(const fy_tokenizer *tok, std::vector<int64_t> &ids, int max_len, int *n_dropped)
{
    /* transformers reserves one slot for eos, truncates the content, then
     * adds eos only when the content does not already end with it. */
    size_t room = (size_t)max_len - 1;
    int dropped = 0;
    if (ids.size() > room) {
        dropped = (int)(ids.size() - room);
        ids.resize(room);
    }
    if (ids.empty() || ids.back() != tok->eos_id) ids.push_back(tok->eos_id);
    if (n_dropped) *n_dropped = dropped;
}

extern "C" fy_status fy_tokenizer_encode(const fy_tokenizer *tok, const char *text, int max_len,
                                         int64_t *ids, int64_t *mask, int *n_real, int *n_dropped)
{
    if (max_len < 1) return fy_error(FY_ERR_INVALID, "tokenizer: max_len must be at least 1 (got %d)", max_len);
    if (!text) text = "";
    try {
        std::vector<int64_t> content;
        FY_TRY(encode_content(tok, text, content));
        finish_ids(tok, content, max_len, n_dropped);
        for (int i = 0; i < max_len; i++) {
            bool real = (size_t)i < content.size();
            ids[i] = real ? content[(size_t)i] : tok->pad_id;
            if (mask) mask[i] = real ? 1 : 0;
        }
        if (n_real) *n_real = (int)content.size();
    } catch (const std::bad_alloc &) {
        return fy_error(FY_ERR_NOMEM, "tokenizer: out of memory encoding a %zu-byte text", std::strlen(text));
    } catch (...) {
        return fy_error(FY_ERR_INTERNAL, "tokenizer: sentencepiece failed on a %zu-byte text", std::strlen(text));
    }
    return FY_OK;
}

#else /* !FERRY_HAVE_SENTENCEPIECE */

struct fy_tokenizer {
    int unused;
};

extern "C" fy_status fy_tokenizer_load(const char *dir, fy_tokenizer **out)
{
    *out = nullptr;
    return fy_error(FY_ERR_UNSUPPORTED,
                    "%s/spiece.model: ferry was built without libsentencepiece (install libsentencepiece-dev and rebuild)",
                    dir ? dir : "tokenizer");
}

extern "C" void fy_tokenizer_free(fy_tokenizer *tok)
{
    (void)tok;
}

extern "C" int fy_tokenizer_vocab_size(const fy_tokenizer *tok)
{
    (void)tok;
    return 0;
}

extern "C" int64_t fy_tokenizer_pad_id(const fy_tokenizer *tok)
{
    (void)tok;
    return 0;
}

extern "C" int64_t fy_tokenizer_eos_id(const fy_tokenizer *tok)
{
    (void)tok;
    return 1;
}

extern "C" fy_status fy_tokenizer_encode(const fy_tokenizer *tok, const char *text, int max_len,
                                         int64_t *ids, int64_t *mask, int *n_real, int *n_dropped)
{
    (void)tok, (void)text, (void)max_len, (void)ids, (void)mask, (void)n_real, (void)n_dropped;
    return fy_error(FY_ERR_UNSUPPORTED, "tokenizer: ferry was built without libsentencepiece");
}

#endif
