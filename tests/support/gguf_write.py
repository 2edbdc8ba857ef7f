#!/usr/bin/env python3
"""Write a GGUF file (version 3) from a safetensors transformer, for tests.

    gguf_write.py IN.safetensors OUT.gguf TYPE [--arch wan] [--bad-type ID]

TYPE is f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k. As the real
converters do, only 2-D weights whose rows are whole blocks get a quantised
type (the others stay f32), 1-D tensors stay f32, and a tensor of more than
four dimensions is stored flattened to 2-D with ComfyUI-GGUF's
"comfy.gguf.orig_shape.NAME" metadata. The block layouts are ggml-common.h's;
the quantisers are simple (a min/max per sub-block), not ggml's search, so
the errors are somewhat larger than llama.cpp's files have.

--bad-type ID writes ggml type ID for the first weight (its bytes as the
asked TYPE): for the unknown-type test; --bad-offset N adds N to the last
tensor's offset. Prints how many tensors each type got. Only numpy is needed."""
import json
import struct
import sys

import numpy as np

GGML = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "q4_k": 12, "q5_k": 13, "q6_k": 14, "bf16": 30}
BLOCK = {"q8_0": 32, "q4_0": 32, "q4_k": 256, "q5_k": 256, "q6_k": 256}
ALIGN = 32


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = data[a:b]
        dt = info["dtype"]
        if dt == "F32":
            x = np.frombuffer(buf, "<f4")
        elif dt == "F16":
            x = np.frombuffer(buf, "<f2").astype(np.float32)
        elif dt == "BF16":
            x = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: tensor {name} is {dt}")
        out[name] = x.reshape(info["shape"]).astype(np.float32)
    return out


def f16_bytes(v):
    return np.asarray(v, np.float32).astype("<f2")


def q8_0(x):
    b = x.reshape(-1, 32)
    d = np.abs(b).max(axis=1) / 127
    inv = np.divide(1, d, out=np.zeros_like(d), where=d > 0)
    q = np.clip(np.rint(b * inv[:, None]), -127, 127).astype(np.int8)
    out = np.zeros((b.shape[0], 34), np.uint8)
    out[:, :2] = f16_bytes(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def q4_0(x):
    b = x.reshape(-1, 32)
    idx = np.abs(b).argmax(axis=1)
    mx = b[np.arange(b.shape[0]), idx]
    d = mx / -8
    inv = np.divide(1, d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(15, np.trunc(b * inv[:, None] + 8.5)).astype(np.uint8)
    out = np.zeros((b.shape[0], 18), np.uint8)
    out[:, :2] = f16_bytes(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def k_scales(x, levels):
    """Super-blocks [nb, 8, 32] -> (d, dmin as f32 after f16, sc, m [nb, 8], q [nb, 8, 32])."""
    mn = np.minimum(x.min(axis=2), 0)
    mx = x.max(axis=2)
    scale = (mx - mn) / levels
    mins = -mn
    d = f16_bytes(scale.max(axis=1) / 63).astype(np.float32)
    dmin = f16_bytes(mins.max(axis=1) / 63).astype(np.float32)
    sc = np.clip(np.rint(np.divide(scale, d[:, None], out=np.zeros_like(scale), where=d[:, None] > 0)), 0, 63)
    m = np.clip(np.rint(np.divide(mins, dmin[:, None], out=np.zeros_like(mins), where=dmin[:, None] > 0)), 0, 63)
    d1 = d[:, None] * sc
    m1 = dmin[:, None] * m
    q = np.divide(x + m1[:, :, None], d1[:, :, None], out=np.zeros_like(x), where=d1[:, :, None] > 0)
    q = np.clip(np.rint(q), 0, levels).astype(np.uint8)
    return d, dmin, sc.astype(np.uint8), m.astype(np.uint8), q


def pack_k_scales(sc, m):
    s = np.zeros((sc.shape[0], 12), np.uint8)
    s[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    s[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
    s[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    return s


def k_header(d, dmin, sc, m):
    nb = d.shape[0]
    out = np.zeros((nb, 16), np.uint8)
    out[:, 0:2] = f16_bytes(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = f16_bytes(dmin).view(np.uint8).reshape(-1, 2)
    out[:, 4:16] = pack_k_scales(sc, m)
    return out


def low_nibbles(q):
    """[nb, 8, 32] values -> qs [nb, 128]: pair p holds sub-blocks 2p (low) and 2p+1 (high)."""
    lo = q[:, 0::2, :] & 0xF
    hi = q[:, 1::2, :] & 0xF
    return (lo | (hi << 4)).reshape(q.shape[0], 128)


def q4_k(x):
    b = x.reshape(-1, 8, 32)
    d, dmin, sc, m, q = k_scales(b, 15)
    return np.concatenate([k_header(d, dmin, sc, m), low_nibbles(q)], axis=1).tobytes()


def q5_k(x):
    b = x.reshape(-1, 8, 32)
    d, dmin, sc, m, q = k_scales(b, 31)
    qh = np.zeros((b.shape[0], 32), np.uint8)
    for j in range(8):
        qh |= ((q[:, j, :] >> 4) & 1) << j
    return np.concatenate([k_header(d, dmin, sc, m), qh, low_nibbles(q)], axis=1).tobytes()


def q6_k(x):
    b = x.reshape(-1, 16, 16)
    amax = np.abs(b).max(axis=2)
    scale = amax / 31
    d = f16_bytes(scale.max(axis=1) / 127).astype(np.float32)
    sc = np.clip(np.rint(np.divide(scale, d[:, None], out=np.zeros_like(scale), where=d[:, None] > 0)), 0, 127)
    d1 = d[:, None] * sc
    q = np.divide(b, d1[:, :, None], out=np.zeros_like(b), where=d1[:, :, None] > 0)
    q = (np.clip(np.rint(q), -32, 31) + 32).astype(np.uint8).reshape(-1, 256)
    nb = b.shape[0]
    ql = np.zeros((nb, 128), np.uint8)
    qh = np.zeros((nb, 64), np.uint8)
    for n in range(2):
        v = q[:, 128 * n:128 * n + 128]
        ql[:, 64 * n:64 * n + 32] = (v[:, 0:32] & 0xF) | ((v[:, 64:96] & 0xF) << 4)
        ql[:, 64 * n + 32:64 * n + 64] = (v[:, 32:64] & 0xF) | ((v[:, 96:128] & 0xF) << 4)
        qh[:, 32 * n:32 * n + 32] = ((v[:, 0:32] >> 4) | ((v[:, 32:64] >> 4) << 2) | ((v[:, 64:96] >> 4) << 4)
                                     | ((v[:, 96:128] >> 4) << 6))
    out = np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8), f16_bytes(d).view(np.uint8).reshape(-1, 2)],
                         axis=1)
    return out.tobytes()


QUANT = {"q8_0": q8_0, "q4_0": q4_0, "q4_k": q4_k, "q5_k": q5_k, "q6_k": q6_k}


def encode(x, kind):
    if kind == "f32":
        return x.astype("<f4").tobytes()
    if kind == "f16":
        return x.astype("<f2").tobytes()
    if kind == "bf16":  # round to nearest even, as torch does
        u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        return u.astype("<u2").tobytes()
    return QUANT[kind](x.astype(np.float32))


def kind_of(x, want):
    if x.ndim == 1:
        return "f32"
    if want in BLOCK:
        return want if x.ndim == 2 and x.shape[-1] % BLOCK[want] == 0 else "f32"
    return want


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def main():
    args = sys.argv[1:]
    arch, bad_type, bad_offset = "wan", None, 0
    while len(args) > 3:
        flag, value = args[-2], args[-1]
        args = args[:-2]
        if flag == "--arch":
            arch = value
        elif flag == "--bad-type":
            bad_type = int(value)
        elif flag == "--bad-offset":
            bad_offset = int(value)
        else:
            raise SystemExit(__doc__)
    if len(args) != 3 or args[2] not in GGML:
        raise SystemExit(__doc__)
    src, dst, want = args
    tensors = read_safetensors(src)
    kv = [gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string(arch),
          gguf_string("general.alignment") + struct.pack("<II", 4, ALIGN)]
    infos, blobs, offset, counts = [], [], 0, {}
    names = sorted(tensors)
    for name in names:
        x = tensors[name]
        if x.ndim > 4:
            kv.append(gguf_string("comfy.gguf.orig_shape." + name) + struct.pack("<IIQ", 9, 11, x.ndim)
                      + struct.pack("<%dq" % x.ndim, *x.shape))
            x = x.reshape(x.shape[0], -1)
        kind = kind_of(x, want)
        counts[kind] = counts.get(kind, 0) + 1
        blob = encode(x, kind)
        ggml = GGML[kind]
        if bad_type is not None and kind == want and x.ndim == 2:
            ggml, bad_type = bad_type, None
        ne = list(reversed(x.shape))
        infos.append(gguf_string(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
                     + struct.pack("<IQ", ggml, offset + (bad_offset if name == names[-1] else 0)))
        blobs.append(blob + b"\0" * (-len(blob) % ALIGN))
        offset += len(blobs[-1])
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kv)) + b"".join(kv) + b"".join(infos)
    head += b"\0" * (-len(head) % ALIGN)
    with open(dst, "wb") as f:
        f.write(head + b"".join(blobs))
    for kind in sorted(counts):
        print(f"{kind}: {counts[kind]} tensors")


if __name__ == "__main__":
    main()
