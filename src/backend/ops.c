/* The backend-neutral side of the op tables: names, construction, queries. */
#include "ferry/ops.h"

#include "ferry/backend.h"

static const char *const op_names[FY_OP_COUNT] = {
    [FY_OP_COPY] = "copy",
    [FY_OP_CONVERT] = "convert",
    [FY_OP_LINEAR] = "linear",
    [FY_OP_BMM] = "bmm",
    [FY_OP_ADD] = "add",
    [FY_OP_MUL] = "mul",
    [FY_OP_SCALE] = "scale",
    [FY_OP_AXPY] = "axpy",
    [FY_OP_SILU] = "silu",
    [FY_OP_GELU] = "gelu",
    [FY_OP_GELU_TANH] = "gelu_tanh",
    [FY_OP_RELU] = "relu",
    [FY_OP_GATED_GELU] = "gated_gelu",
    [FY_OP_GATED_ADD] = "gated_add",
    [FY_OP_LAYER_NORM] = "layer_norm",
    [FY_OP_LAYER_NORM_MODULATE] = "layer_norm_modulate",
    [FY_OP_RMS_NORM] = "rms_norm",
    [FY_OP_CHANNEL_RMS_NORM] = "channel_rms_norm",
    [FY_OP_GROUP_NORM] = "group_norm",
    [FY_OP_SOFTMAX] = "softmax",
    [FY_OP_ATTENTION] = "attention",
    [FY_OP_ROPE] = "rope",
    [FY_OP_EMBEDDING] = "embedding",
    [FY_OP_RELATIVE_BIAS] = "relative_bias",
    [FY_OP_TRANSPOSE] = "transpose",
    [FY_OP_PERMUTE] = "permute",
    [FY_OP_UPSAMPLE_NEAREST2X] = "upsample_nearest2x",
    [FY_OP_CONV3D] = "conv3d",
};

const char *fy_op_name(fy_op op)
{
    return op >= 0 && op < FY_OP_COUNT && op_names[op] ? op_names[op] : "unknown op";
}

static fy_status available(const fy_backend *b)
{
    if (!b->vt->ops)
        return fy_error(FY_ERR_UNSUPPORTED, "no compute ops for device %s in this build (use --device cpu or emu)",
                        fy_backend_name(b));
    return b->vt->ops->available ? b->vt->ops->available() : FY_OK;
}

fy_status fy_ops_create(fy_backend *b, const fy_ops_config *c, fy_ops **out)
{
    *out = NULL;
    FY_TRY(available(b));
    return b->vt->ops->create(b, c, out);
}

void fy_ops_free(fy_ops *o)
{
    if (o) o->free(o);
}

static bool takes_weight(fy_op op)
{
    return op == FY_OP_LINEAR || op == FY_OP_EMBEDDING || op == FY_OP_CONV3D;
}

fy_status fy_ops_require(const fy_backend *b, fy_op op, fy_dtype act, fy_dtype weight)
{
    FY_TRY(available(b));
    if (b->vt->ops->supports(op, act, weight)) return FY_OK;
    if (op == FY_OP_LINEAR && fy_dtype_is_quant(weight))
        return fy_error(FY_ERR_UNSUPPORTED, "%s weights (GGUF) are decoded by the CPU's linear only: device %s has no "
                        "kernel for them yet; run with --device cpu or --device emu", fy_dtype_name(weight),
                        fy_backend_name(b));
    if (takes_weight(op))
        return fy_error(FY_ERR_UNSUPPORTED, "op %s: %s activations with %s weights are not supported on device %s",
                        fy_op_name(op), fy_dtype_name(act), fy_dtype_name(weight), fy_backend_name(b));
    return fy_error(FY_ERR_UNSUPPORTED, "op %s: %s activations are not supported on device %s", fy_op_name(op),
                    fy_dtype_name(act), fy_backend_name(b));
}

uint64_t fy_ops_scratch_bound(const fy_backend *b, bool convolutions)
{
    return b->vt->ops && b->vt->ops->scratch_bound ? b->vt->ops->scratch_bound(convolutions) : 0;
}
