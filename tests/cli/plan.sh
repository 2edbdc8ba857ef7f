#!/usr/bin/env bash
# `ferry plan` loads the tiny Wan model into engines as generate would and
# prints the plan and a group table without running; --vram-budget has the
# planner choose and predict (from the FLOPs at the requested size); bad
# flags are usage errors (exit 2).
# usage: bash plan.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" plan
SIZES=(--height 64 --width 64 --num-frames 5 --max-sequence-length 16)

"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload layerwise >"$T/lw.txt" 2>"$T/lw.err"
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "layerwise plan: exit $rc"; cat "$T/lw.err"; fi
has "layerwise plan" "$T/lw.txt" "plan         layerwise, prefetch depth 1, 0 resident blocks"
has "group table header" "$T/lw.txt" "component.*group.*bytes.*tier"
has "streamed block tier" "$T/lw.txt" "transformer *blocks.0 .*pinned"
has "small group tier" "$T/lw.txt" "transformer *embed .*device"
has "bound vs budget" "$T/lw.txt" "device bound .* budget unlimited"

"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --vram-budget 3MiB --emu-bandwidth 1GB/s >"$T/pl.txt" 2>"$T/pl.err"
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "planner plan: exit $rc"; cat "$T/pl.err"; fi
has "planner chose" "$T/pl.txt" "(chosen by the planner)"
has "planner predicted" "$T/pl.txt" "planner      --vram-budget 3.00 MiB, copy .* predicted step"

# The first estimate is the transformer's FLOPs at the requested size over
# a measured rate, shown beside the estimate from the weights' bytes.
has "estimate from FLOPs" "$T/pl.txt" "estimate     from FLOPs (used): .* s a step, .*FLOP at .* GFLOP/s measured"
has "estimate from bytes" "$T/pl.txt" "from the weights' bytes alone: .* s"
flops_of() { # size flags -> one step's FLOPs, from the estimate line
    "$FERRY" plan --model "$MODEL" "$@" --max-sequence-length 16 --device emu --vram-budget 64MiB 2>/dev/null |
        awk '/estimate     from FLOPs/ { for (i = 2; i <= NF; i++) if ($i ~ /^[TGM]FLOP$/) { v = $(i - 1); u = $i } }
             END { m = u == "TFLOP" ? 1e12 : u == "GFLOP" ? 1e9 : 1e6; printf "%.0f\n", v * m }'
}
while read -r height width frames tokens_ratio; do
    small=$(flops_of --height 64 --width 64 --num-frames 5)
    large=$(flops_of --height "$height" --width "$width" --num-frames "$frames")
    if [ "$small" -gt 0 ] && [ "$large" -gt $((small * tokens_ratio)) ]; then ok; else
        bad "FLOPs at ${height}x${width}x$frames ($large) not above $tokens_ratio x those at 64x64x5 ($small)"
    fi
done <<'CASES'
128 128 9 6
64 128 5 2
CASES

# Wan2.2 A14B: the planner weighs each expert by the steps it runs (10
# steps at boundary_ratio 0.875: the schedule gives the high-noise one 4).
"$FERRY" plan --model "$FIXTURES/wan22-a14b-tiny/model" "${SIZES[@]}" --steps 10 --device emu --max-memory 0=4MiB \
    >"$T/moe.txt" 2>"$T/moe.err" || bad "A14B plan under a budget"
has "steps per expert" "$T/moe.txt" "steps        transformer 4 x .* s, transformer_2 6 x .* s: .* s of denoising"

"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --vram-budget 64KiB >"$T/small.txt" 2>"$T/small.err"
rc=$?
if [ $rc -eq 1 ] && grep -q -- "--vram-budget 64.00 KiB: no plan fits" "$T/small.err"; then ok; else
    bad "too small a budget: exit $rc"
    cat "$T/small.err"
fi

"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload layerwise --storage-dtype fp8_e4m3 \
    --fp8-scale tensor >"$T/fp8.txt" 2>"$T/fp8.err"
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "fp8 plan: exit $rc"; cat "$T/fp8.err"; fi
has "fp8 storage line" "$T/fp8.txt" "storage      fp8_e4m3, tensor scales: castable weights .* (as stored "
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --storage-dtype auto >/dev/null 2>"$T/auto.err"
rc=$?
if [ $rc -eq 2 ] && grep -q "needs --vram-budget" "$T/auto.err"; then ok; else bad "--storage-dtype auto alone: exit $rc"; fi

"$FERRY" plan --model "$MODEL" --vram-budget 1GiB --offload none >/dev/null 2>"$T/c.err"
rc=$?
if [ $rc -eq 2 ] && grep -q "drop --offload" "$T/c.err"; then ok; else bad "--vram-budget with --offload: exit $rc"; fi
"$FERRY" plan >/dev/null 2>"$T/m.err"
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--model DIR is required" "$T/m.err"; then ok; else bad "plan without a model: exit $rc"; fi

# The disk tier: a host budget below the streamed blocks puts some on disk;
# verify passes with half the model's bytes of host memory.
"$FERRY" plan --model "$MODEL" --device emu --offload layerwise --max-memory cpu=300KB >"$T/disk.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "blocks on disk" "$T/disk.out" && grep -q " disk$" "$T/disk.out"; then ok; else
    bad "plan with a host budget: exit $rc"
    cat "$T/disk.out"
fi
"$FERRY" verify "$MODEL" "$FIXTURES/wan-tiny/fixtures" --component transformer,pipeline --max-memory cpu=650KB \
    >"$T/verify.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q " 0 failed" "$T/verify.out"; then ok; else
    bad "verify with half the model's bytes of host memory: exit $rc"
    tail -5 "$T/verify.out"
fi

# A budget with room for the transformer but not for the text's K/V of every
# block: it computes them each step instead, and the video is the same.
KV=(--model "$MODEL" --prompt "a fox" --height 64 --width 64 --num-frames 1 --steps 2 --device emu
    --offload layerwise --text-encoder-cpu-offload --vae-cpu-offload)
"$FERRY" generate "${KV[@]}" --output "$T/kv.png" >"$T/kv.out" 2>&1 || bad "generate with the K/V cache"
"$FERRY" generate "${KV[@]}" --max-memory 0=1100KiB --output "$T/nokv.png" >"$T/nokv.out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "generate without room for the K/V cache: exit $rc"; cat "$T/nokv.out"; fi
has "K/V cache dropped" "$T/nokv.out" "keys and values for every block .* do not fit beside the plan"
if [ -s "$T/kv.png" ] && cmp -s "$T/kv.png" "$T/nokv.png"; then ok; else bad "the video changed without the K/V cache"; fi

finish
