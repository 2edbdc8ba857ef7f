#!/usr/bin/env bash
# Flux.1 through the CLI: `ferry generate` writes a PNG for the tiny dev and
# schnell models (cpu, and emu under a streaming plan), bad sizes and outputs
# fail with one line before any work, SIGINT/SIGTERM stop every stage with no
# PNG left, a progress bar counts the steps, `ferry verify` passes every component,
# `ferry plan` shows the transformer's blocks and `ferry info` the components.
# usage: bash flux.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
DEV=$FIXTURES/flux-tiny/model
SCHNELL=$FIXTURES/flux-tiny/model-schnell
FIX=$FIXTURES/flux-tiny/fixtures
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" flux

is_png() { # name, path, width, height
    if python3 - "$2" "$3" "$4" <<'PY'; then ok; else bad "$1: $2 is not a $3x$4 PNG"; fi
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
w, h = struct.unpack(">II", data[16:24])
assert (w, h) == (int(sys.argv[2]), int(sys.argv[3])), (w, h)
PY
}

run() { # name, expected exit, then the command; output in $T/out
    local name=$1 want=$2
    shift 2
    "$@" >"$T/out" 2>&1
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok; else bad "$name: exit $rc, expected $want"; cat "$T/out"; fi
}

run "generate dev" 0 "$FERRY" generate --model "$DEV" --prompt "a red fox in the snow" --output "$T/dev.png" \
    --height 64 --width 80 --steps 2 --guidance-scale 3.5 --seed 7 --max-sequence-length 24 --threads 2
is_png "generate dev" "$T/dev.png" 80 64
run "generate schnell emu" 0 "$FERRY" generate --model "$SCHNELL" --prompt "a blue bird" --output "$T/s.png" \
    --height 48 --width 64 --steps 1 --device emu --offload layerwise --max-sequence-length 16 --threads 2 \
    --text-encoder-cpu-offload --vae-tiling --vae-tile 32 --vae-tile-stride 24
is_png "generate schnell emu" "$T/s.png" 64 48
# The same seed gives the same image.
run "generate dev again" 0 "$FERRY" generate --model "$DEV" --prompt "a red fox in the snow" --output "$T/dev2.png" \
    --height 64 --width 80 --steps 2 --guidance-scale 3.5 --seed 7 --max-sequence-length 24 --threads 2
if cmp -s "$T/dev.png" "$T/dev2.png"; then ok; else bad "same seed, different image"; fi

run "size not a multiple of 16" 1 "$FERRY" generate --model "$DEV" --prompt x --output "$T/bad.png" --height 60
has "size not a multiple of 16" "$T/out" "multiples of 16"
[ ! -e "$T/bad.png" ] && ok || bad "a failed run left $T/bad.png"
run "mp4 output" 2 "$FERRY" generate --model "$DEV" --prompt x --output "$T/x.mp4" --height 64 --width 64
has "mp4 output" "$T/out" "give a .png path"

# A Wan folder that claims to be FluxPipeline: one line naming what is missing.
cp -r "$FIXTURES/wan-tiny/model" "$T/fake"
sed -i 's/"WanPipeline"/"FluxPipeline"/' "$T/fake/model_index.json"
run "wan folder labelled flux" 1 "$FERRY" generate --model "$T/fake" --prompt x --output "$T/fake.png" --height 32 --width 32
has "wan folder labelled flux" "$T/out" "FluxPipeline's scheduler must be"
[ ! -e "$T/fake.png" ] && ok || bad "a failed run left $T/fake.png"
run "device map balanced" 1 "$FERRY" generate --model "$DEV" --prompt x --output "$T/dm.png" --height 32 --width 32 \
    --device emu --device-map balanced --max-memory 0=1GiB,1=1GiB
has "device map balanced" "$T/out" "not implemented for Flux"

# SIGINT and SIGTERM stop every stage as they stop a Wan run: exit 130/143, one line, no PNG.
for spec in "INT:loading" "TERM:text encoder" "INT:denoising" "TERM:vae decode" "INT:write" "TERM:write"; do
    sig=${spec%%:*}
    want=$([ "$sig" = TERM ] && echo 143 || echo 130)
    FERRY_TEST_RAISE="$spec" run "SIG$spec" "$want" "$FERRY" generate --model "$DEV" --prompt x \
        --output "$T/sig.png" --height 32 --width 32 --steps 2 --max-sequence-length 8
    has "SIG$spec" "$T/out" "(SIG$sig); no output was written"
    if ls "$T"/sig.png* >/dev/null 2>&1; then bad "SIG$spec left a file"; ls "$T"; rm -f "$T"/sig.png*; fi
done
# The progress bar: one line per step on a pipe at least at the start and the end.
run "progress" 0 "$FERRY" generate --model "$DEV" --prompt x --output "$T/bar.png" --height 32 --width 32 --steps 3 \
    --max-sequence-length 8
has "progress" "$T/out" "denoising: step 3/3"

run "verify dev" 0 "$FERRY" verify "$DEV" "$FIX" --threads 2
has "verify dev" "$T/out" " 0 failed"
run "verify schnell emu" 0 "$FERRY" verify "$SCHNELL" "$FIX" --device emu --offload sequential --threads 2
has "verify schnell emu" "$T/out" " 0 failed"

run "plan" 0 "$FERRY" plan --model "$DEV" --height 64 --width 80 --device emu --offload layerwise
has "plan" "$T/out" "single_transformer_blocks.2"
run "info" 0 "$FERRY" info "$DEV"
has "info" "$T/out" "text_encoder_2"
finish
