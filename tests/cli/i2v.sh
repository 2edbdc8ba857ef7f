#!/usr/bin/env bash
# Wan image-to-video: every I2V component of `ferry verify` against the
# wan-i2v-tiny fixtures on cpu and on emu under several plans, with and
# without --image-encoder-cpu-offload.
# usage: bash i2v.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-i2v-tiny/model
FIX=$FIXTURES/wan-i2v-tiny/fixtures
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" i2v

COMPONENTS=image_processor,image_encoder,condition,transformer
plans=(
    "--device cpu"
    "--device cpu --image-encoder-cpu-offload"
    "--device emu --offload sequential"
    "--device emu --offload layerwise --max-memory 0=2200KiB --image-encoder-cpu-offload"
    "--device emu --vram-budget 3MiB"
    "--device emu --vae-cpu-offload --vae-slicing --vae-tiling --offload group"
)
for plan in "${plans[@]}"; do
    # shellcheck disable=SC2086
    if "$FERRY" verify "$MODEL" "$FIX" --component "$COMPONENTS" $plan >"$T/verify" 2>&1; then
        has "verify $plan" "$T/verify" " 0 failed"
    else
        bad "verify $plan: exit $?"
        cat "$T/verify"
    fi
done
finish
