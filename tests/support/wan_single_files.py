#!/usr/bin/env python3
"""Single-file checkpoints made from a diffusers Wan folder, for the tests.

The original Wan / ComfyUI names are found by inverting diffusers' own
from_single_file conversion (convert_wan_transformer_to_diffusers,
convert_wan_vae_to_diffusers), written out here as its rename chain: every
name is checked to convert back to the folder's, so a file made here is one
diffusers would load as that folder.

usage: wan_single_files.py transformer MODEL OUT [--prefix P]
       wan_single_files.py vae MODEL OUT
       wan_single_files.py text_encoder MODEL OUT [--wan-names] [--fp8-scaled REF_FILE]
       wan_single_files.py all MODEL OUT
       wan_single_files.py edit IN OUT (--rename OLD NEW | --copy OLD NEW | --drop NAME)...
"""
import array
import bisect
import json
import struct
import sys

# ---- safetensors (no numpy: a tensor is (dtype, shape, bytes)) -------------


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], list(info["shape"]), body[a:b])
    return out


def write(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ---- diffusers' conversion, written out ---------------------------------------

DIT_RENAMES = [
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("cross_attn", "attn2"),
    ("self_attn", "attn1"),
    (".o.", ".to_out.0."),
    (".q.", ".to_q."),
    (".k.", ".to_k."),
    (".v.", ".to_v."),
    (".k_img.", ".add_k_proj."),
    (".v_img.", ".add_v_proj."),
    (".norm_k_img.", ".norm_added_k."),
    ("head.modulation", "scale_shift_table"),
    ("head.head", "proj_out"),
    ("modulation", "scale_shift_table"),
    ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
    ("norm2", "norm__placeholder"),
    ("norm3", "norm2"),
    ("norm__placeholder", "norm3"),
    ("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
    ("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
    ("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
    ("img_emb.proj.4", "condition_embedder.image_embedder.norm2"),
]


def dit_to_diffusers(key):
    key = key.replace("model.diffusion_model.", "")
    for old, new in DIT_RENAMES:
        key = key.replace(old, new)
    return key


def dit_original(key):
    """Inverse of dit_to_diffusers, by hand."""
    parts = key.split(".")
    if parts[0] == "blocks":
        rest = ".".join(parts[2:])
        for new, old in [("attn1.to_out.0.", "self_attn.o."), ("attn2.to_out.0.", "cross_attn.o."),
                         ("attn1.to_", "self_attn."), ("attn2.to_", "cross_attn."),
                         ("attn2.add_k_proj.", "cross_attn.k_img."), ("attn2.add_v_proj.", "cross_attn.v_img."),
                         ("attn2.norm_added_k.", "cross_attn.norm_k_img."), ("attn1.", "self_attn."),
                         ("attn2.", "cross_attn."), ("norm2.", "norm3."), ("norm3.", "norm2."),
                         ("ffn.net.0.proj.", "ffn.0."), ("ffn.net.2.", "ffn.2."),
                         ("scale_shift_table", "modulation")]:
            if rest.startswith(new):
                rest = old + rest[len(new):]
                break
        return "blocks.%s.%s" % (parts[1], rest)
    for new, old in [("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
                     ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
                     ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
                     ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
                     ("condition_embedder.time_proj", "time_projection.1"),
                     ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
                     ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
                     ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
                     ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
                     ("scale_shift_table", "head.modulation"), ("proj_out", "head.head")]:
        if key.startswith(new):
            return old + key[len(new):]
    return key


RESIDUAL = {"residual.0.gamma": "norm1.gamma", "residual.2.bias": "conv1.bias", "residual.2.weight": "conv1.weight",
            "residual.3.gamma": "norm2.gamma", "residual.6.bias": "conv2.bias", "residual.6.weight": "conv2.weight"}


def vae_to_diffusers(key):
    """diffusers' convert_wan_vae_to_diffusers for one key."""
    for side in ("encoder", "decoder"):
        for i, j in (("0", "0"), ("2", "1")):
            for old, new in RESIDUAL.items():
                if key == "%s.middle.%s.%s" % (side, i, old):
                    return "%s.mid_block.resnets.%s.%s" % (side, j, new)
        for rest in ("norm.gamma", "to_qkv.weight", "to_qkv.bias", "proj.weight", "proj.bias"):
            if key == "%s.middle.1.%s" % (side, rest):
                return "%s.mid_block.attentions.0.%s" % (side, rest)
        for old, new in (("head.0.gamma", "norm_out.gamma"), ("head.2.bias", "conv_out.bias"),
                         ("head.2.weight", "conv_out.weight"), ("conv1.weight", "conv_in.weight"),
                         ("conv1.bias", "conv_in.bias")):
            if key == "%s.%s" % (side, old):
                return "%s.%s" % (side, new)
    quant = {"conv1.weight": "quant_conv.weight", "conv1.bias": "quant_conv.bias",
             "conv2.weight": "post_quant_conv.weight", "conv2.bias": "post_quant_conv.bias"}
    if key in quant:
        return quant[key]
    if key.startswith("encoder.downsamples."):
        new = key.replace("encoder.downsamples.", "encoder.down_blocks.")
        for old, rep in list(RESIDUAL.items()) + [("shortcut.bias", "conv_shortcut.bias"),
                                                   ("shortcut.weight", "conv_shortcut.weight")]:
            if "." + old in new:
                return new.replace("." + old, "." + rep)
        return new
    if key.startswith("decoder.upsamples."):
        block = int(key.split(".")[2])
        if "residual" in key:
            level, r = block // 4, block % 4
            for old, new in RESIDUAL.items():
                if key.endswith("." + old):
                    return "decoder.up_blocks.%d.resnets.%d.%s" % (level, r, new)
        if ".shortcut." in key:
            level, r = block // 4, block % 4
            return "decoder.up_blocks.%d.resnets.%d.conv_shortcut.%s" % (level, r, key.split(".")[-1])
        if ".resample." in key or ".time_conv." in key:
            rest = ".".join(key.split(".")[3:])
            return "decoder.up_blocks.%d.upsamplers.0.%s" % (block // 4, rest)
    return key


def vae_original(key):
    """Inverse of vae_to_diffusers, by hand."""
    inverse = {v: k for k, v in RESIDUAL.items()}
    inverse.update({"conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"})
    p = key.split(".")
    if p[0] in ("quant_conv", "post_quant_conv"):
        return ("conv1." if p[0] == "quant_conv" else "conv2.") + p[1]
    side = p[0]
    if p[1] in ("conv_in", "norm_out", "conv_out"):
        head = {"conv_in": "conv1", "norm_out": "head.0", "conv_out": "head.2"}[p[1]]
        return "%s.%s.%s" % (side, head, p[2])
    if p[1] == "mid_block":
        if p[2] == "attentions":
            return "%s.middle.1.%s" % (side, ".".join(p[4:]))
        return "%s.middle.%d.%s" % (side, 2 * int(p[3]), inverse[".".join(p[4:])])
    if p[1] == "down_blocks":
        rest = ".".join(p[3:])
        return "%s.downsamples.%s.%s" % (side, p[2], inverse.get(rest, rest))
    level = int(p[2])
    if p[3] == "resnets":
        return "decoder.upsamples.%d.%s" % (4 * level + int(p[4]), inverse[".".join(p[5:])])
    return "decoder.upsamples.%d.%s" % (4 * level + 3, ".".join(p[5:]))


T5_BLOCK = [("layer.0.SelfAttention.relative_attention_bias.", "pos_embedding.embedding."),
            ("layer.0.SelfAttention.", "attn."), ("layer.0.layer_norm.", "norm1."), ("layer.1.layer_norm.", "norm2."),
            ("layer.1.DenseReluDense.wi_0.", "ffn.gate.0."), ("layer.1.DenseReluDense.wi_1.", "ffn.fc1."),
            ("layer.1.DenseReluDense.wo.", "ffn.fc2.")]


def t5_wan_name(key):
    if key == "shared.weight":
        return "token_embedding.weight"
    if key == "encoder.final_layer_norm.weight":
        return "norm.weight"
    p = key.split(".")
    rest = ".".join(p[3:])
    for hf, wan in T5_BLOCK:
        if rest.startswith(hf):
            return "blocks.%s.%s%s" % (p[2], wan, rest[len(hf):])
    raise SystemExit("no Wan name for " + key)


# ---- fp8 (ComfyUI's scaled e4m3) ----------------------------------------------

def e4m3_table():
    v = []
    for b in range(256):
        s, e, m = b >> 7, (b >> 3) & 15, b & 7
        if e == 15 and m == 7:
            x = float("nan")
        elif e == 0:
            x = m / 8.0 * 2.0 ** -6
        else:
            x = (1 + m / 8.0) * 2.0 ** (e - 7)
        v.append(-x if s else x)
    return v


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bf16_bits(x):
    """A float rounded to f32, then to bfloat16 bits (nearest even; finite values)."""
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    return (u + 0x7FFF + ((u >> 16) & 1)) >> 16


def quantize(dtype, raw):
    """fp8 bytes, the f32 scale, and the bf16 bytes ferry's dequantisation gives:
    the e4m3 value times the scale in f32, rounded once to bf16."""
    if dtype != "F32":
        raise SystemExit("quantize: F32 weights only")
    w = array.array("f", raw)
    table = e4m3_table()
    finite = sorted((table[b], b) for b in range(256) if table[b] == table[b])
    values = [v for v, _ in finite]
    scale = f32(max(max(abs(x) for x in w), 1e-30) / 448.0)
    q, deq = bytearray(), array.array("H")
    for x in w:
        t = x / scale
        i = min(max(bisect.bisect_left(values, t), 1), len(values) - 1)
        if abs(t - values[i - 1]) <= abs(values[i] - t):
            i -= 1
        b = finite[i][1]
        q.append(b)
        deq.append(bf16_bits(f32(table[b] * scale)))
    return bytes(q), scale, deq.tobytes()


# ---- commands -----------------------------------------------------------------

def transformer(model, out, prefix=""):
    src = read(model + "/transformer/diffusion_pytorch_model.safetensors")
    res = {}
    for key, t in src.items():
        orig = dit_original(key)
        if dit_to_diffusers(orig) != key:
            raise SystemExit("%s -> %s does not convert back" % (key, orig))
        res[prefix + orig] = t
    return res


def vae(model):
    res = {}
    for key, t in read(model + "/vae/diffusion_pytorch_model.safetensors").items():
        orig = vae_original(key)
        if vae_to_diffusers(orig) != key:
            raise SystemExit("%s -> %s does not convert back (%s)" % (key, orig, vae_to_diffusers(orig)))
        res[orig] = t
    return res


def text_encoder(model, wan_names, fp8_ref):
    src = read(model + "/text_encoder/model.safetensors")
    res, ref = {}, {}
    for key, (dtype, shape, raw) in src.items():
        name = t5_wan_name(key) if wan_names else key
        if fp8_ref and len(shape) == 2 and key != "shared.weight" and "relative_attention_bias" not in key:
            q, scale, deq = quantize(dtype, raw)
            res[name] = ("F8_E4M3", shape, q)
            res[name[:-len("weight")] + "scale_weight"] = ("F32", [], struct.pack("<f", scale))
            ref[key] = ("BF16", shape, deq)
        else:
            res[name] = (dtype, shape, raw)
            ref[key] = (dtype, shape, raw)
    if fp8_ref:
        res["scaled_fp8"] = ("F8_E4M3", [0], b"")
        write(fp8_ref, ref)
    return res


def edit(args):
    tensors = read(args[0])
    ops = args[2:]
    while ops:
        if ops[0] == "--rename":
            tensors[ops[2]] = tensors.pop(ops[1])
            ops = ops[3:]
        elif ops[0] == "--copy":
            tensors[ops[2]] = tensors[ops[1]]
            ops = ops[3:]
        elif ops[0] == "--drop":
            del tensors[ops[1]]
            ops = ops[2:]
        else:
            raise SystemExit("edit: unknown " + ops[0])
    write(args[1], tensors)


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "edit":
        return edit(args)
    model, out = args[0], args[1]
    if cmd == "transformer":
        prefix = args[3] if len(args) > 3 and args[2] == "--prefix" else ""
        write(out, transformer(model, out, prefix))
    elif cmd == "vae":
        write(out, vae(model))
    elif cmd == "text_encoder":
        ref = args[args.index("--fp8-scaled") + 1] if "--fp8-scaled" in args else None
        write(out, text_encoder(model, "--wan-names" in args, ref))
    elif cmd == "all":
        res = transformer(model, out, "model.diffusion_model.")
        res.update({"vae." + k: v for k, v in vae(model).items()})
        res.update({"text_encoders.umt5xxl.transformer." + k: v
                    for k, v in text_encoder(model, False, None).items()})
        write(out, res)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
