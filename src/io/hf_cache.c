/* Model ids (ORG/NAME) looked up in the local Hugging Face cache, the way
 * huggingface_hub lays it out: $HF_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; in it
 * models--ORG--NAME/refs/REVISION holds a commit and
 * models--ORG--NAME/snapshots/COMMIT/ the files (symlinks into blobs/).
 * Nothing is ever downloaded: a model that is not there is an error that
 * says where ferry looked. */
#include "ferry/model.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ORG/NAME with the characters the Hub allows, not a path that exists. */
bool fy_model_is_id(const char *s)
{
    if (!s || !s[0] || s[0] == '/' || s[0] == '.' || s[0] == '~') return false;
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/')) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_./", *p)) return false;
    return !strstr(s, "..") && !strstr(s, "--");
}

fy_status fy_hf_cache_dir(char *out, size_t size)
{
    const char *hub = getenv("HF_HUB_CACHE");
    const char *home = getenv("HF_HOME");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *user = getenv("HOME");
    int n;
    if (hub && hub[0]) n = snprintf(out, size, "%s", hub);
    else if (home && home[0]) n = snprintf(out, size, "%s/hub", home);
    else if (xdg && xdg[0]) n = snprintf(out, size, "%s/huggingface/hub", xdg);
    else if (user && user[0]) n = snprintf(out, size, "%s/.cache/huggingface/hub", user);
    else return fy_error(FY_ERR_NOT_FOUND, "no Hugging Face cache: set HF_HOME (or HOME)");
    if (n < 0 || (size_t)n >= size) return fy_error(FY_ERR_INVALID, "the Hugging Face cache path is too long");
    return FY_OK;
}

static bool is_commit(const char *s)
{
    size_t n = strlen(s);
    if (n != 40) return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return false;
    return true;
}

/* refs/REVISION's commit (one line of hex), or REVISION itself when it is one. */
static fy_status read_ref(const char *repo, const char *id, const char *revision, char commit[41])
{
    if (is_commit(revision)) {
        memcpy(commit, revision, 41);
        return FY_OK;
    }
    char path[8192];
    int n = snprintf(path, sizeof path, "%s/refs/%s", repo, revision);
    if (n < 0 || (size_t)n >= sizeof path) return fy_error(FY_ERR_INVALID, "%s: revision \"%s\" is too long", id, revision);
    FILE *f = strstr(revision, "..") ? NULL : fopen(path, "r");
    if (!f)
        return fy_error(FY_ERR_NOT_FOUND,
                        "%s: revision \"%s\" is not in the Hugging Face cache (no %s); ferry never downloads: "
                        "fetch it with `huggingface-cli download %s --revision %s`, or pass a commit or a folder",
                        id, revision, path, id, revision);
    char line[128] = {0};
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (!ok || !is_commit(line))
        return fy_error(FY_ERR_FORMAT, "%s: does not hold a commit hash (a damaged cache? download %s again)", path,
                        id);
    memcpy(commit, line, 41);
    return FY_OK;
}

fy_status fy_model_resolve(const char *id, const char *revision, char *out, size_t size)
{
    if (!fy_model_is_id(id)) return fy_error(FY_ERR_INVALID, "\"%s\" is not a model id (ORG/NAME)", id ? id : "");
    char cache[4096], repo[4096 + 256], commit[41];
    FY_TRY(fy_hf_cache_dir(cache, sizeof cache));
    int n = snprintf(repo, sizeof repo, "%s/models--", cache);
    for (const char *p = id; *p && n + 3 < (int)sizeof repo; p++) {
        if (*p == '/') n += snprintf(repo + n, sizeof repo - (size_t)n, "--");
        else repo[n++] = *p;
    }
    repo[n] = '\0';
    if (!is_dir(repo))
        return fy_error(FY_ERR_NOT_FOUND,
                        "%s: not a folder, and not in the Hugging Face cache (no %s); ferry never downloads: fetch "
                        "it with `huggingface-cli download %s`, set HF_HOME to the cache that holds it, or pass "
                        "the model folder", id, repo, id);
    FY_TRY(read_ref(repo, id, revision && revision[0] ? revision : "main", commit));
    int k = snprintf(out, size, "%s/snapshots/%s", repo, commit);
    if (k < 0 || (size_t)k >= size) return fy_error(FY_ERR_INVALID, "%s: the cache path is too long", id);
    if (!is_dir(out))
        return fy_error(FY_ERR_NOT_FOUND,
                        "%s: snapshot %s is not in the Hugging Face cache (no %s); ferry never downloads: fetch it "
                        "with `huggingface-cli download %s`", id, commit, out, id);
    return FY_OK;
}
