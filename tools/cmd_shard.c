/* `ferry shard IN OUT_DIR --max-shard-size SIZE`: re-shard a checkpoint the
 * way diffusers' save_pretrained(max_shard_size=...) lays it out. Given a
 * component folder, the output is a component folder too (config.json is
 * copied along), so it loads in place of the original. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/options.h"
#include "ferry/safetensors.h"
#include "io/regular_file.h"

static const char usage[] =
    "usage: ferry shard IN OUT_DIR --max-shard-size SIZE [--stem NAME] [--dtype bf16|f16]\n"
    "\n"
    "IN is a .safetensors file, a .safetensors.index.json, or a component folder\n"
    "(e.g. MODEL/transformer). OUT_DIR receives <stem>-0000K-of-0000N.safetensors files\n"
    "of at most SIZE each plus <stem>.safetensors.index.json (a single file when\n"
    "everything fits). For a folder, the stem is diffusion_pytorch_model or model, as\n"
    "found, and config.json is copied so that OUT_DIR can replace the folder.\n"
    "\n"
    "  --max-shard-size SIZE  e.g. 5GB, 500MB, 2GiB (GB = 10^9, GiB = 2^30)\n"
    "  --stem NAME            output file stem (default: the input's)\n"
    "  --dtype bf16|f16       convert every float matrix stored wider (f32) as it is\n"
    "                         written (as torch_dtype=torch.bfloat16 + save_pretrained)\n";

void cli_shard_help(FILE *out)
{
    fputs(usage, out);
}

typedef struct shard_args {
    const char *in;
    const char *out_dir;
    const char *stem;
    fy_dtype dtype; /* --dtype; FY_DTYPE_COUNT = as stored */
    fy_run_options options; /* only --max-shard-size is taken from here */
} shard_args;

/* ---- Arguments ------------------------------------------------------------------- */

static int parse_args(shard_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        if (strncmp(arg, "--max-shard-size", 16) == 0 && (arg[16] == '\0' || arg[16] == '=')) {
            bool consumed = false;
            if (fy_run_options_parse_arg(&a->options, argc, argv, &i, &consumed) != FY_OK)
                return cli_usage_error("shard", "%s", fy_error_message());
            continue;
        }
        i++;
        if (cli_log_flag(arg)) continue;
        if (strcmp(arg, "--stem") == 0) {
            if (i >= argc) return cli_usage_error("shard", "--stem needs a value");
            a->stem = argv[i++];
        } else if (strncmp(arg, "--stem=", 7) == 0) {
            a->stem = arg + 7;
        } else if (strcmp(arg, "--dtype") == 0 || strncmp(arg, "--dtype=", 8) == 0) {
            const char *v = arg[7] == '=' ? arg + 8 : (i < argc ? argv[i++] : NULL);
            if (!v) return cli_usage_error("shard", "--dtype needs a value (bf16 or f16)");
            if (fy_dtype_parse(v, &a->dtype) != FY_OK || !fy_storage_is_narrow(a->dtype))
                return cli_usage_error("shard", "--dtype \"%s\": use bf16 or f16", v);
        } else if (arg[0] == '-' && arg[1]) {
            return cli_usage_error("shard", "unknown option \"%s\"", arg);
        } else if (!a->in) {
            a->in = arg;
        } else if (!a->out_dir) {
            a->out_dir = arg;
        } else {
            return cli_usage_error("shard", "unexpected argument \"%s\"", arg);
        }
    }
    if (!a->out_dir) return cli_usage_error("shard", "expected IN and OUT_DIR");
    if (!a->options.max_shard_size) return cli_usage_error("shard", "--max-shard-size is required (e.g. 5GB)");
    if (a->stem && (!a->stem[0] || strchr(a->stem, '/')))
        return cli_usage_error("shard", "--stem \"%s\" must be a plain file name", a->stem);
    return 0;
}

/* ---- Input kinds ------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The checkpoint inside a component folder: diffusers first, then transformers. */
static fy_status find_in_folder(const char *dir, char *path, size_t size, char *stem, size_t stem_size)
{
    static const char *const stems[] = {"diffusion_pytorch_model", "model"};
    static const char *const suffixes[] = {".safetensors", ".safetensors.index.json"};
    for (size_t s = 0; s < 2; s++) {
        for (size_t k = 0; k < 2; k++) {
            snprintf(path, size, "%s/%s%s", dir, stems[s], suffixes[k]);
            if (!file_exists(path)) continue;
            snprintf(stem, stem_size, "%s", stems[s]);
            return FY_OK;
        }
    }
    return fy_error(FY_ERR_NOT_FOUND,
                    "%s: no checkpoint in this folder (expected diffusion_pytorch_model.safetensors, model.safetensors "
                    "or their .safetensors.index.json)", dir);
}

/* "diffusion_pytorch_model-00001-of-00003.safetensors" -> "diffusion_pytorch_model". */
static void stem_of_file(const char *path, char *stem, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(stem, size, "%s", base);
    size_t n = strlen(stem);
    if (ends_with(stem, ".safetensors.index.json")) n -= strlen(".safetensors.index.json");
    else if (ends_with(stem, ".safetensors")) n -= strlen(".safetensors");
    stem[n] = '\0';
    unsigned k, total;
    char tail[8];
    const char *dash = n >= 15 ? stem + n - 15 : NULL;
    if (dash && sscanf(dash, "-%5u-of-%5u%1s", &k, &total, tail) == 2 && dash[6] == '-') stem[n - 15] = '\0';
}

static fy_status resolve_input(const char *in, char *path, size_t size, char *stem, size_t stem_size,
                               bool *is_folder)
{
    struct stat st;
    if (stat(in, &st) != 0) return fy_error(FY_ERR_NOT_FOUND, "%s: %s", in, strerror(errno));
    *is_folder = S_ISDIR(st.st_mode);
    if (*is_folder) return find_in_folder(in, path, size, stem, stem_size);
    if (!ends_with(in, ".safetensors") && !ends_with(in, ".safetensors.index.json"))
        return fy_error(FY_ERR_INVALID,
                        "%s: expected a .safetensors file, a .safetensors.index.json or a component folder", in);
    snprintf(path, size, "%s", in);
    stem_of_file(in, stem, stem_size);
    return FY_OK;
}

static fy_status check_not_same_folder(const char *in_dir, const char *out_dir)
{
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(in_dir, a) && realpath(out_dir, b) && strcmp(a, b) == 0)
        return fy_error(FY_ERR_INVALID, "%s: the output folder is the input folder; choose another (re-sharding in "
                        "place would overwrite the input while reading it)", out_dir);
    return FY_OK;
}

/* mkdir -p: OUT_DIR may be a new path several levels deep. */
static fy_status make_dirs(const char *dir)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof path) return fy_error(FY_ERR_INVALID, "%s: path too long", dir);
    for (char *p = path + 1;; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return fy_error(FY_ERR_IO, "%s: cannot create the output folder: %s", path, strerror(errno));
        if (end) break;
        *p = '/';
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fy_error(FY_ERR_IO, "%s: exists and is not a folder", dir);
    return FY_OK;
}

static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, size, ".");
    else if (slash == path) snprintf(dir, size, "/");
    else snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* ---- config.json ----------------------------------------------------------------------- */

static fy_status write_all(int fd, const char *buf, size_t n, const char *path)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return fy_error(FY_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        buf += w;
        n -= (size_t)w;
    }
    return FY_OK;
}

static fy_status read_small_file(const char *path, char **buf, size_t *n)
{
    return fy_read_regular(path, 64u << 20, "a config file", buf, n);
}

/* Written under a temporary name and renamed, so OUT_DIR never holds half a config. */
static fy_status copy_config(const char *in_dir, const char *out_dir)
{
    char src[PATH_MAX], dst[PATH_MAX], tmp[PATH_MAX];
    int a = snprintf(src, sizeof src, "%s/config.json", in_dir);
    int b = snprintf(dst, sizeof dst, "%s/config.json", out_dir);
    int c = snprintf(tmp, sizeof tmp, "%s/config.json.tmp.XXXXXX", out_dir);
    if (a < 0 || b < 0 || c < 0 || (size_t)a >= sizeof src || (size_t)c >= sizeof tmp)
        return fy_error(FY_ERR_INVALID, "%s: path too long", out_dir);
    if (!file_exists(src)) return FY_OK;
    char *buf = NULL;
    size_t n = 0;
    FY_TRY(read_small_file(src, &buf, &n));
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(buf);
        return fy_error(FY_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    fy_status s = write_all(fd, buf, n, tmp);
    if (s == FY_OK && fchmod(fd, 0644) != 0) s = fy_error(FY_ERR_IO, "%s: chmod failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == FY_OK) s = fy_error(FY_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (s == FY_OK && rename(tmp, dst) != 0) s = fy_error(FY_ERR_IO, "%s: rename failed: %s", dst, strerror(errno));
    if (s != FY_OK) unlink(tmp);
    free(buf);
    return s;
}

/* ---- Main ------------------------------------------------------------------------------- */

static fy_status report(const char *out_dir, const char *stem)
{
    fy_st_set *set = NULL;
    FY_TRY(fy_st_set_open_dir(out_dir, stem, &set));
    uint64_t bytes = 0;
    for (size_t i = 0; i < fy_st_set_count(set); i++) bytes += fy_st_set_at(set, i)->nbytes;
    char human[32];
    printf("wrote %zu tensors (%s) in %zu file%s to %s (stem %s)\n", fy_st_set_count(set),
           cli_human_bytes(bytes, human, sizeof human), fy_st_set_file_count(set),
           fy_st_set_file_count(set) == 1 ? "" : "s", out_dir, stem);
    fy_st_set_free(set);
    return FY_OK;
}

static fy_status shard(const shard_args *a)
{
    char in_path[PATH_MAX], in_stem[256], in_dir[PATH_MAX];
    bool is_folder = false;
    FY_TRY(resolve_input(a->in, in_path, sizeof in_path, in_stem, sizeof in_stem, &is_folder));
    if (is_folder) snprintf(in_dir, sizeof in_dir, "%s", a->in);
    else dir_of(in_path, in_dir, sizeof in_dir);
    FY_TRY(check_not_same_folder(in_dir, a->out_dir));
    const char *stem = a->stem ? a->stem : in_stem;
    /* Open the input before creating anything, so a bad input leaves no folder behind. */
    fy_st_set *input = NULL;
    FY_TRY(fy_st_set_open(in_path, &input));
    fy_st_set_free(input);
    FY_TRY(make_dirs(a->out_dir));
    FY_TRY(fy_st_reshard_as(in_path, a->out_dir, stem, a->options.max_shard_size, a->dtype));
    if (is_folder) FY_TRY(copy_config(in_dir, a->out_dir));
    return report(a->out_dir, stem);
}

int cli_shard_main(int argc, char **argv)
{
    shard_args a = {0};
    a.dtype = FY_DTYPE_COUNT;
    fy_run_options_init(&a.options);
    int rc = parse_args(&a, argc, argv);
    if (rc) return rc;
    return shard(&a) == FY_OK ? 0 : cli_fail();
}
