#!/usr/bin/env bash
# --device-map balanced spreads the tiny Wan model's components over two
# emulated devices: `ferry plan` shows which device holds what, the video is
# identical to the one-device run, `ferry verify` passes the golden pipeline,
# --device-map auto on one device is the planner's plan, over several it
# keeps blocks resident on the other devices (same video), and a cpu device
# or auto beside --offload are refused with one line.
# usage: bash device_map.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" devmap
SIZES=(--height 64 --width 64 --num-frames 5 --max-sequence-length 16)
RUN=(--prompt "A red fox" --steps 2 --seed 7 --storage-dtype none) # the budgets below are f32 figures
TWO=(--device emu --max-memory 0=8MiB,1=8MiB --device-map balanced)

"$FERRY" plan --model "$MODEL" "${SIZES[@]}" "${TWO[@]}" >"$T/plan.txt" 2>&1
has "plan: transformer's device" "$T/plan.txt" "^engine: emu:1 holds text_encoder transformer"
has "plan: vae's device" "$T/plan.txt" "^engine: emu:0 holds vae"

"$FERRY" generate --model "$MODEL" "${SIZES[@]}" "${RUN[@]}" --device emu --output "$T/one.png" >"$T/one.txt" 2>&1 ||
    bad "one device: exit $?"
"$FERRY" generate --model "$MODEL" "${SIZES[@]}" "${RUN[@]}" "${TWO[@]}" --output "$T/two.png" >"$T/two.txt" 2>&1 ||
    bad "two devices: exit $?"
# Several frames to a .png name: one file per frame, NAME_0000.png on.
if [ -s "$T/one_0000.png" ] && cat "$T"/one_*.png | cmp -s - <(cat "$T"/two_*.png); then ok; else
    bad "balanced video differs from the one-device video"
fi
has "report: second device" "$T/two.txt" "emu:0 *vae: peak"

"$FERRY" verify "$MODEL" "$FIXTURES/wan-tiny/fixtures" --component pipeline "${TWO[@]}" >"$T/verify.txt" 2>&1 ||
    bad "verify pipeline under balanced: exit $?"
has "verify passes" "$T/verify.txt" " 0 failed"

# --device-map auto on one device: the planner keeps what fits its budget.
"$FERRY" generate --model "$MODEL" "${SIZES[@]}" "${RUN[@]}" --device emu --max-memory 0=3MiB --device-map auto \
    --output "$T/auto.png" >"$T/auto.txt" 2>&1 || bad "auto on one device: exit $?"
if [ -s "$T/auto_0000.png" ] && cat "$T"/one_*.png | cmp -s - <(cat "$T"/auto_*.png); then ok; else
    bad "--device-map auto video differs from the one-device video"
fi
has "auto: planner report" "$T/auto.txt" "planner *3.0 MiB budget"

# --device-map auto over three devices: what fits on device 0 stays there,
# the next blocks stay resident on devices 1 and 2, the rest stream.
AUTO3=(--device emu --max-memory 0=3MiB,1=300KiB,2=100KiB --device-map auto --storage-dtype none)
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" "${AUTO3[@]}" >"$T/auto3.plan" 2>&1
has "auto3 plan: device 1's blocks" "$T/auto3.plan" "^  device 1     [0-9]* resident blocks"
has "auto3 plan: a block on device 2" "$T/auto3.plan" "decoder.* device 2$"
has "auto3 plan: the rest streamed" "$T/auto3.plan" "pinned host$"
"$FERRY" generate --model "$MODEL" "${SIZES[@]}" "${RUN[@]}" "${AUTO3[@]}" --output "$T/auto3.png" >"$T/auto3.txt" 2>&1 ||
    bad "auto over three devices: exit $?"
if [ -s "$T/auto3_0000.png" ] && cat "$T"/one_*.png | cmp -s - <(cat "$T"/auto3_*.png); then ok; else
    bad "--device-map auto over three devices: video differs from the one-device video"
fi
has "auto3 report: the other devices' peaks" "$T/auto3.txt" "device 1 peak .* of 0.3 MiB .*; device 2 peak .* of 0.1 MiB"

n=0
for args in "--device cpu --device-map balanced" "--device emu --device-map auto --offload layerwise"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    "$FERRY" generate --model "$MODEL" "${SIZES[@]}" "${RUN[@]}" $args --output "$T/no$n.png" 2>"$T/no.err"
    rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <"$T/no.err")" -eq 1 ] && ! compgen -G "$T/no$n*.png" >/dev/null; then ok; else
        bad "$args: exit $rc, $(wc -l <"$T/no.err") lines"
        cat "$T/no.err"
    fi
done

finish
