/* Training a sentencepiece model, for the random-weight demo model: a
 * tokenizer has to exist for the pipeline to run, and a fresh machine has
 * none. libsentencepiece_train is C++ too; no exception reaches C. */
#include "ferry/tokenizer.h"

#include <cstdio>
#include <new>
#include <string>
#include <unordered_map>

#ifdef FERRY_HAVE_SENTENCEPIECE_TRAIN
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace {

class sentences_iterator : public sentencepiece::SentenceIterator {
public:
    sentences_iterator(const char *const *s, size_t n) : s_(s), n_(n) { load(); }
    bool done() const override { return i_ >= n_; }
    void Next() override
    {
        i_++;
        load();
    }
    const std::string &value() const override { return value_; }
    sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

private:
    void load()
    {
        if (i_ < n_) value_ = s_[i_] ? s_[i_] : "";
    }
    const char *const *s_;
    size_t n_;
    size_t i_ = 0;
    std::string value_;
};

/* T5's spiece.model conventions, so fy_tokenizer reads it as it reads a real one. */
std::unordered_map<std::string, std::string> t5_args(int vocab_size)
{
    return {
        {"model_type", "unigram"},
        {"vocab_size", std::to_string(vocab_size)},
        {"hard_vocab_limit", "false"},
        {"character_coverage", "1.0"},
        {"normalization_rule_name", "nmt_nfkc"},
        {"pad_id", "0"},
        {"eos_id", "1"},
        {"unk_id", "2"},
        {"bos_id", "-1"},
        {"pad_piece", "<pad>"},
        {"eos_piece", "</s>"},
        {"unk_piece", "<unk>"},
        {"num_threads", "1"},
        {"shuffle_input_sentence", "false"},
        {"minloglevel", "2"}, /* the trainer's progress log goes to stderr otherwise */
        {"model_prefix", ""},
    };
}

fy_status write_file(const std::string &bytes, const char *path)
{
    std::string tmp = std::string(path) + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) return fy_error(FY_ERR_IO, "%s: cannot create", tmp.c_str());
    bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path) != 0) {
        std::remove(tmp.c_str());
        return fy_error(FY_ERR_IO, "%s: cannot write the tokenizer model", path);
    }
    return FY_OK;
}

} // namespace

extern "C" fy_status fy_tokenizer_train(const char *const *sentences, size_t count, int vocab_size, const char *path,
                                        int *pieces)
{
    if (pieces) *pieces = 0;
    if (!sentences || !count || !path || vocab_size < 8)
        return fy_error(FY_ERR_INVALID, "tokenizer training: no sentences, no path or vocab_size below 8");
    try {
        sentences_iterator it(sentences, count);
        std::string model;
        sentencepiece::util::Status st = sentencepiece::SentencePieceTrainer::Train(t5_args(vocab_size), &it, &model);
        if (!st.ok()) return fy_error(FY_ERR_INTERNAL, "tokenizer training failed: %s", st.ToString().c_str());
        sentencepiece::SentencePieceProcessor check;
        if (!check.LoadFromSerializedProto(model).ok())
            return fy_error(FY_ERR_INTERNAL, "tokenizer training produced a model sentencepiece cannot load");
        FY_TRY(write_file(model, path));
        if (pieces) *pieces = check.GetPieceSize();
    } catch (const std::bad_alloc &) {
        return fy_error(FY_ERR_NOMEM, "tokenizer training: out of memory");
    } catch (...) {
        return fy_error(FY_ERR_INTERNAL, "tokenizer training: sentencepiece failed");
    }
    return FY_OK;
}

#else /* !FERRY_HAVE_SENTENCEPIECE_TRAIN */

extern "C" fy_status fy_tokenizer_train(const char *const *sentences, size_t count, int vocab_size, const char *path,
                                        int *pieces)
{
    (void)sentences, (void)count, (void)vocab_size;
    if (pieces) *pieces = 0;
    return fy_error(FY_ERR_UNSUPPORTED,
                    "%s: ferry was built without libsentencepiece_train, which the demo needs to make a tokenizer "
                    "(install libsentencepiece-dev, re-run cmake and rebuild)",
                    path ? path : "tokenizer");
}

#endif
