#!/usr/bin/env bash
# Wan image-to-video from the command line: the whole pipeline verified
# under several plans, `ferry generate --image` writing a video, `ferry
# plan` placing the image encoder, `ferry info` listing it, and the clear
# errors for image options on the wrong kind of folder.
# usage: bash i2v_generate.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-i2v-tiny/model
FIX=$FIXTURES/wan-i2v-tiny/fixtures
T2V=$FIXTURES/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" i2v_generate

plans=(
    "--device cpu"
    "--device emu --offload sequential --image-encoder-cpu-offload"
    "--device emu --offload layerwise --max-memory 0=2600KiB --no-cfg-batch"
    "--device emu --vram-budget 4MiB --image-encoder-cpu-offload --vae-cpu-offload"
)
for plan in "${plans[@]}"; do
    # shellcheck disable=SC2086
    if "$FERRY" verify "$MODEL" "$FIX" --component pipeline $plan >"$T/verify" 2>&1; then
        has "pipeline $plan" "$T/verify" " 0 failed"
    else
        bad "pipeline $plan: exit $?"
        cat "$T/verify"
    fi
done

size=(--height 32 --width 48 --num-frames 9 --steps 2)
if "$FERRY" generate --model "$MODEL" --prompt "a fox" --image "$FIX/image_other.png" "${size[@]}" \
    --device emu --image-encoder-cpu-offload --output "$T/out.mp4" >"$T/gen" 2>&1 && [ -s "$T/out.mp4" ]; then
    has "generate report" "$T/gen" "image encoder and condition encode"
else
    bad "generate --image: exit $?"
    cat "$T/gen"
fi

"$FERRY" plan --model "$MODEL" --height 32 --width 48 --num-frames 9 --device emu --image-encoder-cpu-offload >"$T/plan" 2>&1 ||
    bad "plan: exit $?"
has "plan: image encoder on the host" "$T/plan" "host holds image_encoder"
has "plan: the encoder's layers" "$T/plan" "image_encoder layers.1"

"$FERRY" info "$MODEL" >"$T/info" 2>&1 || bad "info: exit $?"
has "info: class" "$T/info" "WanImageToVideoPipeline"
has "info: image encoder" "$T/info" "image_encoder    CLIPVisionModel"

expect_error() { # name, pattern, command...
    local name=$1 pattern=$2
    shift 2
    if "$@" >"$T/err" 2>&1; then bad "$name: exit 0"; else has "$name" "$T/err" "$pattern"; fi
    [ ! -e "$T/x.mp4" ] || bad "$name: wrote an output"
}
expect_error "--image on text-to-video" "is a text-to-video model" \
    "$FERRY" generate --model "$T2V" --prompt x --image "$FIX/image.png" --output "$T/x.mp4"
expect_error "i2v without --image" "give the first frame with --image" \
    "$FERRY" generate --model "$MODEL" --prompt x "${size[@]}" --output "$T/x.mp4"
expect_error "--last-image" "first-last-frame" \
    "$FERRY" generate --model "$MODEL" --prompt x --image "$FIX/image.png" --last-image "$FIX/image.png" \
    "${size[@]}" --output "$T/x.mp4"
printf 'not an image' >"$T/bad.png"
expect_error "a bad image" "bad.png: not a PNG or JPEG" \
    "$FERRY" generate --model "$MODEL" --prompt x --image "$T/bad.png" "${size[@]}" --output "$T/x.mp4"
expect_error "--guidance-scale-2 on i2v" "guidance-scale-2" \
    "$FERRY" generate --model "$MODEL" --prompt x --image "$FIX/image.png" --guidance-scale-2 3 "${size[@]}" \
    --output "$T/x.mp4"
finish
