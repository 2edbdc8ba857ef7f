#!/usr/bin/env bash
# A Wan2.2 TI2V-5B folder (wan22-ti2v-tiny: expand_timesteps, the Wan2.2
# VAE) works as a user runs it: info, verify of every component on cpu and
# emu (layerwise, two devices, the disk tier, fp8 blocks), plan with
# diffusers' size rounding (warned), and generate; image to video (--image)
# in generate, plan and info.
# usage: bash ti2v.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan22-ti2v-tiny/model
FIX=$FIXTURES/wan22-ti2v-tiny/fixtures
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" ti2v

run() { # name, then the command; its output in $T/out
    local name=$1
    shift
    if "$@" >"$T/out" 2>&1; then ok; else bad "$name: exit $?"; cat "$T/out"; fi
}

run "info" "$FERRY" info "$MODEL"
has "info" "$T/out" "AutoencoderKLWan"
run "verify on cpu" "$FERRY" verify "$MODEL" "$FIX" --threads 2
has "verify on cpu" "$T/out" " 0 failed"
run "verify on emu, layerwise" "$FERRY" verify "$MODEL" "$FIX" --threads 2 --device emu --offload layerwise \
    --component vae,transformer,pipeline
has "verify on emu, layerwise" "$T/out" " 0 failed"
run "verify, two devices" "$FERRY" verify "$MODEL" "$FIX" --threads 2 --device emu --device-map balanced \
    --max-memory 0=4MiB,1=4MiB --component vae,transformer,pipeline
has "verify, two devices" "$T/out" " 0 failed"
run "verify, disk tier" "$FERRY" verify "$MODEL" "$FIX" --threads 2 --device emu --offload layerwise \
    --max-memory cpu=600KB --component transformer,pipeline
has "verify, disk tier" "$T/out" " 0 failed"
run "verify, fp8 blocks" "$FERRY" verify "$MODEL" "$FIX" --threads 2 --device emu --storage-dtype fp8_e4m3 \
    --component transformer
has "verify, fp8 blocks" "$T/out" " 0 failed"

SIZES=(--model "$MODEL" --max-sequence-length 16 --threads 2)
run "plan with rounding" "$FERRY" plan "${SIZES[@]}" --height 48 --width 80 --num-frames 8 --device emu \
    --offload layerwise
has "plan rounds the size" "$T/out" "rounded down to 32 x 64"
has "plan rounds the frames" "$T/out" "using 9"
if "$FERRY" plan "${SIZES[@]}" --height 40 --width 64 --num-frames 5 >"$T/out" 2>&1; then
    bad "a height of 40 was accepted"
else
    has "a height of 40" "$T/out" "multiples of 16"
fi

run "generate" "$FERRY" generate "${SIZES[@]}" --prompt "a fox" --steps 2 --height 64 --width 64 --num-frames 5 --device emu \
    --offload layerwise --output "$T/fox.mp4"
if [ -s "$T/fox.mp4" ]; then ok; else bad "generate wrote no video"; fi

# Image to video (no golden fixture: tests/test_wan22_ti2v_image.c checks its arithmetic).
IMAGE=$FIXTURES/wan-i2v-tiny/fixtures/image_other.png
run "generate --image" "$FERRY" generate "${SIZES[@]}" --prompt "a fox" --image "$IMAGE" --steps 2 --height 64 \
    --width 64 --num-frames 5 --device emu --offload sequential --output "$T/img.mp4"
if [ -s "$T/img.mp4" ]; then ok; else bad "generate --image wrote no video"; fi
has "generate --image: the encode" "$T/out" "condition encode"
run "plan --image" "$FERRY" plan "${SIZES[@]}" --image "$IMAGE" --height 64 --width 64 --num-frames 5 --device emu \
    --offload layerwise
has "plan --image: the VAE's encoder" "$T/out" "vae.encoder"
run "plan" "$FERRY" plan "${SIZES[@]}" --height 64 --width 64 --num-frames 5 --device emu --offload layerwise
if grep -q "vae.encoder" "$T/out"; then bad "plan without --image placed the VAE's encoder"; else ok; fi
run "info: modes" "$FERRY" info "$MODEL"
has "info: modes" "$T/out" "image to video with --image"
if "$FERRY" generate "${SIZES[@]}" --prompt x --image "$IMAGE" --last-image "$IMAGE" --output "$T/x.mp4" \
    >"$T/out" 2>&1; then
    bad "--last-image was accepted"
else
    has "--last-image" "$T/out" "first-last-frame"
fi
finish
