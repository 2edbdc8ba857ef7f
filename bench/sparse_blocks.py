#!/usr/bin/env python3
"""Extend a one-block safetensors transformer to N blocks as a sparse file.

    sparse_blocks.py FILE N

FILE holds blocks.0.* and the non-block tensors (a random model written with
one block). The result has blocks.0..N-1, each shaped as blocks.0, every
tensor's data zeros in a sparse file (no disk space, written in a second):
enough for `ferry plan` and `ferry info`, which depend on names, shapes and
bytes only. Never for a run whose numbers matter.
"""
import json
import os
import struct
import sys


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    meta = header.pop("__metadata__", None)
    out = {}
    offset = 0

    def put(name, info):
        nonlocal offset
        begin, end = info["data_offsets"]
        nbytes = end - begin
        out[name] = {"dtype": info["dtype"], "shape": info["shape"], "data_offsets": [offset, offset + nbytes]}
        offset += nbytes

    block0 = {k: v for k, v in header.items() if k.startswith("blocks.0.")}
    for name, info in sorted(header.items()):
        if not name.startswith("blocks."):
            put(name, info)
    for i in range(n):
        for name, info in sorted(block0.items()):
            put("blocks.%d.%s" % (i, name[len("blocks.0."):]), info)
    if meta is not None:
        out["__metadata__"] = meta
    text = json.dumps(out, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.truncate(8 + len(text) + offset)
    os.replace(tmp, path)
    print("%s: %d blocks, %.2f GB (sparse)" % (path, n, (8 + len(text) + offset) / 1e9))


if __name__ == "__main__":
    main()
