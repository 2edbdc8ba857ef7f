#!/usr/bin/env bash
# `ferry info` reports the true parameter count of every component of the tiny
# Wan model (summed here from the safetensors headers by Python's stdlib), and
# a transformer re-sharded by `ferry shard` loads with the same count.
# usage: bash info.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" info

check() { # name, then a command that must succeed
    local name=$1
    shift
    if "$@"; then ok; else bad "$name"; fi
}

# Exact counts from the headers: "component params" per line.
header_counts() {
    python3 - "$1" <<'PY'
import json, os, struct, sys
model = sys.argv[1]
for comp in sorted(os.listdir(model)):
    d = os.path.join(model, comp)
    if not os.path.isdir(d):
        continue
    files = [f for f in os.listdir(d) if f.endswith(".safetensors")]
    if not files:
        continue
    params = 0
    for f in files:
        with open(os.path.join(d, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        for name, t in header.items():
            if name == "__metadata__":
                continue
            p = 1
            for s in t["shape"]:
                p *= s
            params += p
    print(comp, params)
PY
}

if command -v python3 >/dev/null 2>&1; then
    header_counts "$MODEL" >"$T/counts" || bad "python header script"
else
    # Same numbers, computed once with the script above.
    printf 'text_encoder 33184\ntransformer 40864\nvae 243583\n' >"$T/counts"
fi
check "three weighted components counted" test "$(wc -l <"$T/counts")" -eq 3

"$FERRY" info "$MODEL" >"$T/info" 2>"$T/info.err"
check "info exits 0" test $? -eq 0
check "info prints nothing on stderr" test ! -s "$T/info.err"
check "pipeline class" grep -q "^WanPipeline" "$T/info"
total=0
while read -r comp params; do
    total=$((total + params))
    check "$comp params = $params" grep -Eq "^$comp +[A-Za-z0-9]+ +$params \(" "$T/info"
done <"$T/counts"
check "total = $total" grep -Eq "^total +$total \(" "$T/info"
check "tokenizer row" grep -Eq "^tokenizer +T5Tokenizer +- +- +- +-$" "$T/info"
check "scheduler row" grep -Eq "^scheduler +UniPCMultistepScheduler +- " "$T/info"
check "transformer blocks" grep -Eq "^transformer .* f32 .*blocks\.N x 2, [0-9.]+ KiB each$" "$T/info"
check "text encoder blocks" grep -q "encoder.block.N x 2" "$T/info"
check "human params" grep -q "40864 (40.9K)" "$T/info"

# Help and version.
check "ferry --help" "$FERRY" --help >/dev/null
check "ferry info --help" "$FERRY" info --help >/dev/null
check "ferry help shard" "$FERRY" help shard >/dev/null
check "ferry verify --help lists run options" bash -c "'$FERRY' verify --help | grep -q -- --max-memory"
check "ferry --version" bash -c "'$FERRY' --version | grep -q '^ferry [0-9]'"
check "-v and -q accepted" "$FERRY" -q info -v "$MODEL" >/dev/null

# Sharded round trip through the CLI.
"$FERRY" shard "$MODEL/transformer" "$T/sharded/transformer" --max-shard-size 50KB >"$T/shard.out" 2>&1
check "shard exits 0" test $? -eq 0
check "shard index written" test -f "$T/sharded/transformer/diffusion_pytorch_model.safetensors.index.json"
check "config copied" cmp -s "$MODEL/transformer/config.json" "$T/sharded/transformer/config.json"
nshards=$(ls "$T/sharded/transformer" | grep -c '^diffusion_pytorch_model-[0-9]*-of-[0-9]*\.safetensors$')
check "several shards ($nshards)" test "$nshards" -ge 3
check "no temporary files left" test -z "$(ls "$T/sharded/transformer" | grep tmp)"
for c in scheduler text_encoder tokenizer vae; do ln -s "$MODEL/$c" "$T/sharded/$c"; done
cp "$MODEL/model_index.json" "$T/sharded/"
"$FERRY" info "$T/sharded" >"$T/info2" 2>&1
check "info on sharded model exits 0" test $? -eq 0
want=$(awk '$1 == "transformer" { print $2 }' "$T/counts")
check "sharded transformer params = $want" grep -Eq "^transformer +[A-Za-z0-9]+ +$want \(" "$T/info2"
check "same table as the original" diff <(tail -n +2 "$T/info") <(tail -n +2 "$T/info2")

# A single file in, a single file out (everything fits), with a chosen stem.
"$FERRY" shard "$MODEL/text_encoder/model.safetensors" "$T/one" --max-shard-size=5GB --stem model >/dev/null 2>&1
check "single-file shard" test -f "$T/one/model.safetensors" -a ! -f "$T/one/model.safetensors.index.json"
# An index in, resharded again.
"$FERRY" shard "$T/sharded/transformer/diffusion_pytorch_model.safetensors.index.json" "$T/again" \
    --max-shard-size 1GB >/dev/null 2>&1
check "index in, one file out" test -f "$T/again/diffusion_pytorch_model.safetensors"
check "same bytes as the original" cmp -s <(tail -c 163456 "$T/again/diffusion_pytorch_model.safetensors") \
    <(tail -c 163456 "$MODEL/transformer/diffusion_pytorch_model.safetensors")

# verify: the scheduler runs; unimplemented components are skipped, not failed.
"$FERRY" verify "$MODEL" "$FIXTURES/wan-tiny/fixtures" --component scheduler >"$T/verify" 2>&1
rc=$?
if grep -q "not implemented" "$T/verify"; then
    echo "note: scheduler verifier not in this build"
else
    check "verify scheduler exits 0" test $rc -eq 0
    check "verify summary" grep -Eq "^[1-9][0-9]* passed, 0 failed$" "$T/verify"
fi

# Wan2.2 A14B: both experts listed, and which runs which steps.
"$FERRY" info "$FIXTURES/wan22-a14b-tiny/model" >"$T/a14b" 2>&1
check "a14b: transformer_2 listed" grep -q "^transformer_2 .*WanTransformer3DModel .*blocks.N x 2" "$T/a14b"
check "a14b: experts line" grep -q "^experts: boundary_ratio 0.875: transformer (high noise) runs the steps whose timestep >= 875" "$T/a14b"

finish
