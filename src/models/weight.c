/* Shape-checked weight lookup shared by every model. */
#include "models/weight.h"

#include <stdbool.h>

#include "ferry/config.h"
#include "ferry/dtype.h"
#include "ferry/safetensors.h"

static bool matches(const fy_tensor *t, int ndim, const int64_t *shape)
{
    bool quant_rows = fy_dtype_is_quant(t->dtype) && ndim == 2; /* fy_weight_lookup_linear's only */
    bool ok = t->ndim == ndim && ((fy_dtype_is_float(t->dtype) && fy_dtype_size(t->dtype) > 0) || quant_rows) &&
              fy_tensor_is_contiguous(t);
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    return ok;
}

static fy_status check(const fy_component *c, const char *name, int ndim, const int64_t *shape, fy_tensor *out)
{
    if (matches(out, ndim, shape)) return FY_OK;
    const fy_st_file *f = fy_st_set_file_of(c->weights, name);
    fy_tensor want = fy_tensor_wrap(NULL, FY_F32, ndim, shape, FY_HOST);
    char got_s[96], want_s[96];
    const char *config = c->config ? fy_config_path(c->config) : "config.json";
    return fy_error(FY_ERR_FORMAT, "%s: tensor %s is %s %s%s; %s implies a float tensor (f32, f16, bf16 or f8) %s "
                    "(are the weights and the config from the same model?)",
                    f ? fy_st_path(f) : c->dir, name, fy_dtype_name(out->dtype),
                    fy_tensor_shape_str(out, got_s, sizeof got_s),
                    fy_tensor_is_contiguous(out) ? "" : " (not contiguous)", config,
                    fy_tensor_shape_str(&want, want_s, sizeof want_s));
}

fy_status fy_weight_lookup(const fy_component *c, const char *name, int ndim, const int64_t *shape, fy_tensor *out)
{
    FY_TRY(fy_component_weight_f32(c, name, out));
    return check(c, name, ndim, shape, out);
}

fy_status fy_weight_lookup_linear(const fy_component *c, const char *name, int64_t d0, int64_t d1, fy_tensor *out)
{
    int64_t shape[2] = {d0, d1};
    FY_TRY(fy_component_weight(c, name, out));
    bool rows_of_blocks = out->ndim == 2 && out->shape[1] % (int64_t)fy_dtype_block(out->dtype) == 0;
    if (fy_dtype_is_quant(out->dtype) && !rows_of_blocks) FY_TRY(fy_component_weight_f32(c, name, out));
    return check(c, name, 2, shape, out);
}

fy_status fy_weight_lookup2(const fy_component *c, const char *name, int64_t d0, int64_t d1, fy_tensor *out)
{
    int64_t shape[2] = {d0, d1};
    return fy_weight_lookup(c, name, d1 ? 2 : 1, shape, out);
}
