/* Opens libferry-cuda.so from the folder libferry itself was loaded from
 * (build tree or install prefix alike), then by the loader's search path. */
#include "backend/cuda_module.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ferry/version.h"

#ifdef FERRY_HAVE_CUDA
#include <dlfcn.h>

#define MODULE_FILE "libferry-cuda.so"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const fy_cuda_module *loaded;
static char load_failure[768];

/* The folder of the object holding this function: libferry.so, or the
 * executable when libferry is linked statically. */
static void own_folder(char *dir, size_t cap)
{
    Dl_info info;
    dir[0] = '\0';
    if (!dladdr((void *)own_folder, &info) || !info.dli_fname) return;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return;
    size_t n = (size_t)(slash - info.dli_fname);
    if (n + 1 > cap) return;
    memcpy(dir, info.dli_fname, n);
    dir[n] = '\0';
}

static void *open_module(void)
{
    char dir[4096], path[4200];
    own_folder(dir, sizeof dir);
    if (dir[0]) {
        snprintf(path, sizeof path, "%s/%s", dir, MODULE_FILE);
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (lib) return lib;
        const char *why = dlerror();
        /* A library that is there but cannot load (a CUDA library missing)
         * says more than the search below would. */
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            snprintf(load_failure, sizeof load_failure, "%.700s", why ? why : "dlopen failed");
            return NULL;
        }
    }
    void *lib = dlopen(MODULE_FILE, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(load_failure, sizeof load_failure, "%.700s", why ? why : MODULE_FILE);
    }
    return lib;
}

static void load(void)
{
    void *lib = open_module();
    if (!lib) return;
    fy_cuda_module_entry_fn entry = NULL;
    *(void **)&entry = dlsym(lib, FY_CUDA_MODULE_ENTRY);
    const fy_cuda_module *m = entry ? entry() : NULL;
    if (!m || m->abi != FY_CUDA_MODULE_ABI || !m->version || strcmp(m->version, FERRY_VERSION) != 0) {
        snprintf(load_failure, sizeof load_failure, "%s is not the one built with this ferry %s (reinstall both)",
                 MODULE_FILE, FERRY_VERSION);
        dlclose(lib);
        return;
    }
    loaded = m; /* kept open for the life of the process */
}

fy_status fy_cuda_module_get(const fy_cuda_module **out)
{
    pthread_once(&load_once, load);
    *out = loaded;
    if (loaded) return FY_OK;
    return fy_error(FY_ERR_DEVICE,
                    "--device cuda: cannot load the CUDA backend (%.700s); install the CUDA 13 runtime "
                    "libraries (cuBLAS, cudart) or use --device cpu or --device emu",
                    load_failure);
}

#else

fy_status fy_cuda_module_get(const fy_cuda_module **out)
{
    *out = NULL;
    return fy_error(FY_ERR_UNSUPPORTED, "this ferry was built without the CUDA backend (use --device cpu or emu)");
}

#endif
