"""The partial-residency question on a scaled-down Flux.1-dev transformer, on the emulated device.

    PYTHONPATH=python FERRY_LIBRARY=build/libferry.so python3 bench/flux_residency.py \
        [--dir /tmp/flux-residency] [--heads 4] [--size 32] [--steps 10] [--ratio 2.4]

What is real and what is scaled (say it with every figure):
  * blocks: FLUX.1-dev's 19 double + 38 single blocks, head_dim 128, MLP 4x, bf16 random weights,
    but --heads heads instead of 24 (4: width 512 instead of 3072, so each block holds 1/36 of
    the real one's bytes: 0.66 GB instead of 23.8 GB); the text encoders and the VAE are the tiny
    fixture's (joint_attention_dim and pooled_projection_dim follow them);
  * the device budget is 12/23.8 of this transformer's bytes (the "12 GB card"); a two-slot ring
    of the largest block is the same share of both models (5.7%);
  * compute is this machine's CPU at --size pixels (few tokens: a real 512x512 step would take
    minutes here); the emulated copy engine runs at the bandwidth that makes streaming every block
    take --ratio times the measured resident step (2.4: FLUX.1 at 1024x1024 on an H100, 0.43 s of
    bf16 streaming per 0.18 s of compute), so the transfer/compute balance is the real one;
  * cold = the transformer's file evicted from the page cache (posix_fadvise DONTNEED) before the
    process starts; warm = read once before. Pageable = --no-pin-cpu-memory (blocks copied from
    the file mapping, faulted in on first use); the emulated copy engine gives pageable copies the
    same bandwidth as pinned ones, so only the page faults differ. Disk tier = host budget of a
    quarter of the transformer (O_DIRECT reads into a staging ring every step).

The N-step figures are the first N steps of one --steps run (the schedule does not change a step's
cost). Each configuration runs in a fresh process; the VAE decode and text encoders (tiny) are in
the totals. Never part of the test suite: it writes a 0.66 GB model and runs for about 10 minutes.
"""
import argparse
import json
import os
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "fixtures", "flux-tiny", "model")
FULL_BYTES = 23.8e9  # FLUX.1-dev's transformer in bf16
CARD_BYTES = 12e9    # the "12 GB" card of the experiment


# ---- the model folder ---------------------------------------------------------------------------

def block_tensors(prefix, I, M, D, single):
    """(name, shape) of one block, as FluxTransformer2DModel names them."""
    t = []
    lin = lambda n, o, i: t.extend([(prefix + n + ".weight", (o, i)), (prefix + n + ".bias", (o,))])
    if single:
        lin("norm.linear", 3 * I, I)
        for n in ("to_q", "to_k", "to_v"):
            lin("attn." + n, I, I)
        t.extend([(prefix + "attn.norm_q.weight", (D,)), (prefix + "attn.norm_k.weight", (D,))])
        lin("proj_mlp", M, I)
        lin("proj_out", I, I + M)
        return t
    lin("norm1.linear", 6 * I, I)
    lin("norm1_context.linear", 6 * I, I)
    for n in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"):
        lin("attn." + n, I, I)
    for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
        t.append((prefix + "attn." + n + ".weight", (D,)))
    for ff in ("ff", "ff_context"):
        lin(ff + ".net.0.proj", M, I)
        lin(ff + ".net.2", I, M)
    return t


def model_tensors(cfg):
    I = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    M, D, J, P, C = 4 * I, cfg["attention_head_dim"], cfg["joint_attention_dim"], cfg["pooled_projection_dim"], 64
    t = []
    lin = lambda n, o, i: t.extend([(n + ".weight", (o, i)), (n + ".bias", (o,))])
    lin("x_embedder", I, C)
    lin("context_embedder", I, J)
    for e, fan_in in (("timestep_embedder", 256), ("text_embedder", P), ("guidance_embedder", 256)):
        lin(f"time_text_embed.{e}.linear_1", I, fan_in)
        lin(f"time_text_embed.{e}.linear_2", I, I)
    for i in range(cfg["num_layers"]):
        t += block_tensors(f"transformer_blocks.{i}.", I, M, D, False)
    for i in range(cfg["num_single_layers"]):
        t += block_tensors(f"single_transformer_blocks.{i}.", I, M, D, True)
    lin("norm_out.linear", 2 * I, I)
    lin("proj_out", C, I)
    return t


def write_safetensors(path, tensors):
    """bf16 values of about N(0, 0.02) (a repeated random pattern: the values do not matter here)."""
    rng = random.Random(7)
    pattern = b"".join(struct.pack("<f", rng.gauss(0.0, 0.02))[2:] for _ in range(1 << 19))
    header, offset = {}, 0
    for name, shape in tensors:
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, shape in tensors:
            n = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            while n > 0:
                k = min(n, len(pattern))
                f.write(pattern[:k])
                n -= k
    os.replace(path + ".tmp", path)
    return offset


def write_model(root, heads, n_double=19, n_single=38):
    tdir = os.path.join(root, "transformer")
    weights = os.path.join(tdir, "diffusion_pytorch_model.safetensors")
    if os.path.exists(weights):
        return weights
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("transformer"))
    with open(os.path.join(FIXTURE, "transformer", "config.json")) as f:
        cfg = json.load(f)
    cfg.update(num_attention_heads=heads, attention_head_dim=128, axes_dims_rope=[16, 56, 56], num_layers=n_double,
               num_single_layers=n_single)
    os.makedirs(tdir, exist_ok=True)
    with open(os.path.join(tdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(weights, model_tensors(cfg))
    return weights


# ---- one configuration, in its own process ----------------------------------------------------------

def worker(spec):
    import ferry
    pipe = ferry.FluxPipeline.from_pretrained(spec["dir"], **spec["options"])
    marks = []
    t0 = time.monotonic()
    pipe(prompt="a red fox in fresh snow", height=spec["size"], width=spec["size"], num_inference_steps=spec["steps"],
         max_sequence_length=16, generator=1, output_type="uint8",
         callback_on_step_end=lambda p, i, t, k: marks.append(time.monotonic() - t0))
    print(json.dumps({"marks": marks, "total": time.monotonic() - t0}))


def page_cache(path, cold):
    fd = os.open(path, os.O_RDONLY)
    try:
        if cold:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        else:
            while os.read(fd, 1 << 24):
                pass
    finally:
        os.close(fd)


def run(args, weights, options, cold):
    page_cache(weights, cold)
    spec = {"dir": args.dir, "options": options, "size": args.size, "steps": args.steps}
    p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"worker failed ({options}):\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["stats"] = p.stderr
    m = re.search(r"uploaded\s+([\d.]+) (\w+)", p.stderr)
    units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    out["uploaded"] = float(m.group(1)) * units[m.group(2)] if m else 0.0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--dir", default="/tmp/flux-residency")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--ratio", type=float, default=2.4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cli", default=os.path.join(HERE, "..", "build", "ferry"))
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    weights = write_model(args.dir, args.heads)
    model_bytes = os.path.getsize(weights)
    base = {"device": "emu", "threads": args.threads, "check_weights": False}

    resident = run(args, weights, dict(base, offload="none", emu_bandwidth="0"), cold=False)
    steps = [b - a for a, b in zip(resident["marks"], resident["marks"][1:])]
    compute = statistics.median(steps)
    gbps = model_bytes / (args.ratio * compute) / 1e9
    budget = int(model_bytes * CARD_BYTES / FULL_BYTES) >> 20 << 20
    mib = lambda n: f"{n >> 20}MiB"
    bw = f"{gbps:.3f}GB/s"
    print(f"# transformer {model_bytes / 1e9:.2f} GB (19 double + 38 single blocks, {args.heads} heads of 128), "
          f"{args.size}x{args.size}, resident step {compute:.3f} s (warm, median of steps 2-{args.steps}), "
          f"emulated bandwidth {bw} (streaming every block = {args.ratio} x the step), budget "
          f"{budget / 2**30:.2f} GiB (a 12 GB card for 23.8 GB, scaled: see the docstring)")
    plan = subprocess.run([args.cli, "plan", "--model", args.dir, "--height", str(args.size), "--width",
                           str(args.size), "--max-sequence-length", "16", "--device", "emu", "--emu-bandwidth", bw,
                           "--max-memory", f"0={mib(budget)}"], capture_output=True, text=True)
    print("# ferry plan (the planner's choice):")
    for line in plan.stdout.splitlines():
        if re.search(r"plan|resident|predicted|policy|bound", line):
            print("#   " + line.strip())
    cap = {"max_memory": {0: mib(budget)}}
    plans = [("sequential", dict(offload="sequential", **cap)), ("layerwise", dict(offload="layerwise", **cap)),
             ("planner K", dict(vram_budget=mib(budget)))]
    starts = [("warm, pinned", {}, False), ("cold, pinned", {}, True),
              ("cold, pageable", {"pin_cpu_memory": False}, True)]
    rows = []
    for pname, popts in plans:
        for sname, sopts, cold in starts:
            opts = dict(base, emu_bandwidth=bw, **popts, **sopts)
            rows.append((pname, sname, run(args, weights, opts, cold)))
    disk = dict(base, emu_bandwidth=bw, vram_budget=mib(budget), max_memory={"cpu": mib(model_bytes // 4)})
    rows.append(("planner K", "cold, disk tier (host = 1/4)", run(args, weights, disk, True)))

    print("\n| plan | start | steps | run s | first step s | first step share | later step s (median) "
          "| floor/step s | later / floor | stall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pname, sname, r in rows:
        marks = r["marks"]
        later = statistics.median([b - a for a, b in zip(marks, marks[1:])])
        stall = re.search(r"stall\s+([\d.]+) s", r["stats"])
        per_step = r["uploaded"] / args.steps
        floor = max(compute, per_step / (gbps * 1e9))
        for n in (4, args.steps):
            run_s = marks[n - 1] if n < args.steps else r["total"]
            print(f"| {pname} | {sname} | {n} | {run_s:.2f} | {marks[0]:.2f} | {marks[0] / run_s:.0%} | {later:.3f} "
                  f"| {floor:.3f} | {later / floor:.2f} | {stall.group(1) if stall else '-'} |")
    print("\n(floor/step: max(resident compute, this run's uploaded bytes / steps / bandwidth); "
          "the 4-step rows are the first 4 steps of the same run)")
    for pname, sname, r in rows:
        if pname == "planner K" and "disk" in sname:
            print("\n# the disk-tier run's report:\n" + "\n".join("#   " + l for l in r["stats"].splitlines()
                                                                  if l.startswith(("offload", "  "))))


if __name__ == "__main__":
    main()
