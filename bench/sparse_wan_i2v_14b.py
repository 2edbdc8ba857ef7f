#!/usr/bin/env python3
"""Writes a Wan2.1-I2V-14B-480P-shaped diffusers folder whose weights are
all zero and take no disk space (sparse safetensors files: the header, then
a hole), so `ferry plan` can show where a full-size model's components live
without a download or 33 GB of writes. Shapes follow the real configs
(transformer 5120 x 40 blocks, CLIP ViT-H/14, UMT5-XXL, the Wan VAE at
base_dim 96); names and the small configs come from the wan-i2v-tiny
fixture. Nothing here is for running: the zero weights give a zero video.

usage: bench/sparse_wan_i2v_14b.py FIXTURES_DIR OUT_DIR"""
import json
import os
import shutil
import struct
import sys

BF16 = ("BF16", 2)


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return {k: v["shape"] for k, v in h.items()}


def write_sparse(path, shapes):
    header, at = {}, 0
    for name in sorted(shapes):
        n = 1
        for d in shapes[name]:
            n *= d
        header[name] = {"dtype": BF16[0], "shape": shapes[name], "data_offsets": [at, at + n * BF16[1]]}
        at += n * BF16[1]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.truncate(8 + len(text) + at)


def transformer(tiny, layers=40):
    out = {}
    for name, shape in tiny.items():
        if name.startswith("blocks.") and not name.startswith("blocks.0."):
            continue
        if "time_embedder.linear_1" in name:
            sub = {48: 5120, 32: 256}
        elif "text_embedder.linear_1" in name:
            sub = {48: 5120, 32: 4096}
        elif "image_embedder" in name:
            sub = {48: 5120, 40: 1280}
        else:
            sub = {48: 5120, 96: 13824, 288: 30720}
        new = [sub.get(d, d) for d in shape]
        if name.startswith("blocks.0."):
            for i in range(layers):
                out["blocks.%d.%s" % (i, name[len("blocks.0."):])] = new
        else:
            out[name] = new
    return out


def image_encoder(tiny, layers=32):
    out, prefix = {}, "vision_model.encoder.layers."
    for name, shape in tiny.items():
        if name.startswith(prefix) and not name.startswith(prefix + "0."):
            continue
        new = [{40: 1280, 160: 5120, 5: 257}.get(d, d) for d in shape]
        if name.startswith(prefix + "0."):
            for i in range(layers):
                out["%s%d.%s" % (prefix, i, name[len(prefix) + 2:])] = new
        else:
            out[name] = new
    return out


def vae(tiny, scale=24):
    """Channel dims are multiples of base_dim (4 in the fixture); the latent
    side (z 16, moments 32) and RGB keep their sizes."""
    out = {}
    for name, shape in tiny.items():
        keep = set()
        if name.startswith(("quant_conv", "post_quant_conv")):
            keep = {0, 1}
        elif name.startswith("encoder.conv_out"):
            keep = {0}
        elif name.startswith("decoder.conv_in"):
            keep = {1}
        chan = (0, 1) if len(shape) >= 4 else (0,)
        out[name] = [d * scale if i in chan and i not in keep and d % 4 == 0 else d for i, d in enumerate(shape)]
    return out


def text_encoder(layers=24, d=4096, ff=10240, heads=64, kv=64, vocab=256384, buckets=32):
    out = {"shared.weight": [vocab, d], "encoder.final_layer_norm.weight": [d]}
    for i in range(layers):
        p = "encoder.block.%d.layer." % i
        out[p + "0.layer_norm.weight"] = [d]
        for x in "qkv":
            out[p + "0.SelfAttention.%s.weight" % x] = [heads * kv, d]
        out[p + "0.SelfAttention.o.weight"] = [d, heads * kv]
        out[p + "0.SelfAttention.relative_attention_bias.weight"] = [buckets, heads]
        out[p + "1.layer_norm.weight"] = [d]
        out[p + "1.DenseReluDense.wi_0.weight"] = [ff, d]
        out[p + "1.DenseReluDense.wi_1.weight"] = [ff, d]
        out[p + "1.DenseReluDense.wo.weight"] = [d, ff]
    return out


def main():
    fixtures, out = sys.argv[1], sys.argv[2]
    tiny = os.path.join(fixtures, "wan-i2v-tiny", "model")
    os.makedirs(out)
    for c in ("scheduler", "tokenizer", "image_processor"):
        shutil.copytree(os.path.join(tiny, c), os.path.join(out, c))
    shutil.copy(os.path.join(tiny, "model_index.json"), out)
    with open(os.path.join(tiny, "image_processor", "preprocessor_config.json")) as f:
        proc = json.load(f)
    proc["size"] = {"shortest_edge": 224}
    proc["crop_size"] = {"height": 224, "width": 224}
    with open(os.path.join(out, "image_processor", "preprocessor_config.json"), "w") as f:
        json.dump(proc, f, indent=2)
    configs = {
        "transformer": ({"added_kv_proj_dim": 5120, "attention_head_dim": 128, "ffn_dim": 13824, "freq_dim": 256,
                         "image_dim": 1280, "num_attention_heads": 40, "num_layers": 40, "text_dim": 4096},
                        "diffusion_pytorch_model.safetensors", transformer),
        "image_encoder": ({"hidden_size": 1280, "image_size": 224, "intermediate_size": 5120,
                           "num_attention_heads": 16, "num_hidden_layers": 32, "projection_dim": 1024},
                          "model.safetensors", image_encoder),
        "vae": ({"base_dim": 96}, "diffusion_pytorch_model.safetensors", vae),
        "text_encoder": ({"d_ff": 10240, "d_kv": 64, "d_model": 4096, "num_heads": 64, "num_layers": 24,
                          "num_decoder_layers": 24, "vocab_size": 256384}, "model.safetensors", None),
    }
    for comp, (changes, weights, shapes_of) in configs.items():
        os.makedirs(os.path.join(out, comp))
        with open(os.path.join(tiny, comp, "config.json")) as f:
            cfg = json.load(f)
        cfg.update(changes)
        cfg["torch_dtype"] = "bfloat16"
        with open(os.path.join(out, comp, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        shapes = text_encoder() if shapes_of is None else shapes_of(read_header(os.path.join(tiny, comp, weights)))
        write_sparse(os.path.join(out, comp, weights), shapes)


if __name__ == "__main__":
    main()
