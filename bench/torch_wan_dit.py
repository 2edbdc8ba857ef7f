#!/usr/bin/env python3
"""PyTorch's time for one Wan2.1 transformer forward, the reference for
bench_wan_gpu's resident row ("resident compute no slower than PyTorch's on
the same GPU").

The GPU machine has PyTorch but not diffusers, so this is diffusers'
WanTransformer3DModel forward written out in plain PyTorch with the same
shapes and the same work per block (random bf16 weights, bf16 compute,
PyTorch's scaled_dot_product_attention, which picks its flash kernel):
patch embedding, time and text embeddings, per block modulated LayerNorm,
self-attention with RMS-normed q/k and 3D RoPE, cross-attention to the text,
GELU(tanh) feed-forward, then the output head. It measures time, not
numbers: compare it with bench_wan_gpu run on the same preset and latent.

    python3 bench/torch_wan_dit.py [--preset wan2.1-1.3b|wan2.1-14b] [--latent FxHxW]
                                   [--text-len L] [--repeats N] [--compile]
"""
import argparse
import math

import torch
import torch.nn.functional as F

PRESETS = {  # diffusers' transformer/config.json of each model
    "wan2.1-1.3b": dict(dim=1536, heads=12, layers=30, ffn=8960),
    "wan2.1-14b": dict(dim=5120, heads=40, layers=40, ffn=13824),
}
TEXT_DIM, FREQ_DIM, IN_CH, PATCH = 4096, 256, 16, (1, 2, 2)


def linear(i, o):
    return torch.nn.Linear(i, o, dtype=torch.bfloat16, device="cuda")


class Block(torch.nn.Module):
    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (linear(dim, dim) for _ in range(4))
        self.q2, self.k2, self.v2, self.o2 = (linear(dim, dim) for _ in range(4))
        self.nq, self.nk, self.nq2, self.nk2 = (
            torch.nn.RMSNorm(dim, eps=1e-6, dtype=torch.bfloat16, device="cuda") for _ in range(4))
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6, dtype=torch.bfloat16, device="cuda")
        self.ff1, self.ff2 = linear(dim, ffn), linear(ffn, dim)
        self.sst = torch.nn.Parameter(torch.randn(1, 6, dim, dtype=torch.bfloat16, device="cuda") / dim**0.5)

    def split(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, -1).transpose(1, 2)

    def attend(self, q, k, v):
        o = F.scaled_dot_product_attention(self.split(q), self.split(k), self.split(v))
        return o.transpose(1, 2).flatten(2)

    def forward(self, h, text, tproj, cos, sin):
        shift, scale, gate, c_shift, c_scale, c_gate = (self.sst + tproj).chunk(6, dim=1)
        n = F.layer_norm(h, h.shape[-1:], eps=1e-6) * (1 + scale) + shift
        q, k = rope(self.nq(self.q(n)), cos, sin, self.heads), rope(self.nk(self.k(n)), cos, sin, self.heads)
        h = h + self.o(self.attend(q, k, self.v(n))) * gate
        n = self.norm2(h)
        h = h + self.o2(self.attend(self.nq2(self.q2(n)), self.nk2(self.k2(text)), self.v2(text)))
        n = F.layer_norm(h, h.shape[-1:], eps=1e-6) * (1 + c_scale) + c_shift
        return h + self.ff2(F.gelu(self.ff1(n), approximate="tanh")) * c_gate


def rope(x, cos, sin, heads):
    b, s, d = x.shape
    x = x.view(b, s, heads, -1, 2)
    x0, x1 = x[..., 0], x[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(2)


def rope_tables(f, h, w, head_dim):
    # WanRotaryPosEmbed: the head's pairs split over time, height and width.
    parts = (head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6), 2 * (head_dim // 6))
    angles = []
    for n, size, axis in zip(parts, (f, h, w), range(3)):
        inv = 1.0 / (10000 ** (torch.arange(0, n, 2, device="cuda", dtype=torch.float64) / n))
        pos = torch.arange(size, device="cuda", dtype=torch.float64)
        a = torch.outer(pos, inv)
        shape = [f, h, w, a.shape[-1]]
        view = [1, 1, 1, a.shape[-1]]
        view[axis] = size
        angles.append(a.view(view).expand(shape))
    a = torch.cat(angles, dim=-1).reshape(f * h * w, 1, head_dim // 2)
    return a.cos().to(torch.bfloat16), a.sin().to(torch.bfloat16)


class Transformer(torch.nn.Module):
    def __init__(self, dim, heads, layers, ffn):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.patch = linear(IN_CH * math.prod(PATCH), dim)
        self.t1, self.t2, self.tproj = linear(FREQ_DIM, dim), linear(dim, dim), linear(dim, 6 * dim)
        self.x1, self.x2 = linear(TEXT_DIM, dim), linear(dim, dim)
        self.blocks = torch.nn.ModuleList(Block(dim, heads, ffn) for _ in range(layers))
        self.head = linear(dim, IN_CH * math.prod(PATCH))
        self.head_sst = torch.nn.Parameter(torch.randn(1, 2, dim, dtype=torch.bfloat16, device="cuda") / dim**0.5)

    def forward(self, patches, t, text, cos, sin):
        half = FREQ_DIM // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device="cuda", dtype=torch.float32) / half)
        sinus = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)
        temb = self.t2(F.silu(self.t1(sinus.to(torch.bfloat16))))
        tproj = self.tproj(F.silu(temb)).unflatten(1, (6, self.dim))
        text = self.x2(F.gelu(self.x1(text), approximate="tanh"))
        h = self.patch(patches)
        for b in self.blocks:
            h = b(h, text, tproj, cos, sin)
        shift, scale = (self.head_sst + temb[:, None]).chunk(2, dim=1)
        return self.head(F.layer_norm(h, h.shape[-1:], eps=1e-6) * (1 + scale) + shift)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="wan2.1-1.3b", choices=sorted(PRESETS))
    p.add_argument("--latent", default="3x16x16", help="FxHxW latent frames, height, width")
    p.add_argument("--text-len", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    a = p.parse_args()
    c = PRESETS[a.preset]
    f, h, w = (int(v) for v in a.latent.split("x"))
    f2, h2, w2 = f // PATCH[0], h // PATCH[1], w // PATCH[2]
    torch.manual_seed(0)
    with torch.no_grad():
        model = Transformer(**c)
        if a.compile:
            model = torch.compile(model)
        patches = torch.randn(2, f2 * h2 * w2, IN_CH * math.prod(PATCH), dtype=torch.bfloat16, device="cuda")
        text = 0.1 * torch.randn(2, a.text_len, TEXT_DIM, dtype=torch.bfloat16, device="cuda")
        t = torch.tensor([999.0, 417.5], device="cuda")
        cos, sin = rope_tables(f2, h2, w2, c["dim"] // c["heads"])
        model(patches, t, text, cos, sin)  # warm-up (and compile)
        best = float("inf")
        for _ in range(a.repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(patches, t, text, cos, sin)
            end.record()
            torch.cuda.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}: {a.preset} transformer, batch 2, "
          f"latent {a.latent} ({f2 * h2 * w2} tokens an item), text {a.text_len} tokens: "
          f"best forward {best:.3f} s of {a.repeats}")


if __name__ == "__main__":
    main()
