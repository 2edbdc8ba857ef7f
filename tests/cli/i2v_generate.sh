#!/usr/bin/env bash
# Wan image-to-video from the command line: the whole pipeline verified
# under several plans, `ferry generate --image` writing a video, `ferry
# plan` placing the image encoder, `ferry info` listing it, a Wan2.2
# I2V-A14B-style folder (two experts, no image encoder) run, planned and
# listed, and the clear errors for image options on the wrong kind of folder.
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

# A Wan2.2 I2V-A14B-style folder (two experts, no image encoder) built from the fixture's parts.
A14B=$T/i2v_a14b
mkdir -p "$A14B/transformer" "$A14B/transformer_2"
PARTS=$(cd "$MODEL" && pwd)
for c in scheduler text_encoder tokenizer vae; do ln -s "$PARTS/$c" "$A14B/$c"; done
for x in transformer transformer_2; do
    sed -e 's/"image_dim": [0-9]*/"image_dim": null/' -e 's/"added_kv_proj_dim": [0-9]*/"added_kv_proj_dim": null/' \
        "$MODEL/transformer/config.json" >"$A14B/$x/config.json"
    ln -s "$PARTS/transformer/diffusion_pytorch_model.safetensors" "$A14B/$x/"
done
cat >"$A14B/model_index.json" <<'JSON'
{"_class_name": "WanImageToVideoPipeline", "boundary_ratio": 0.875, "expand_timesteps": false,
 "image_encoder": [null, null], "image_processor": [null, null],
 "scheduler": ["diffusers", "UniPCMultistepScheduler"], "text_encoder": ["transformers", "UMT5EncoderModel"],
 "tokenizer": ["transformers", "T5Tokenizer"], "transformer": ["diffusers", "WanTransformer3DModel"],
 "transformer_2": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}
JSON
a14b=(--height 32 --width 48 --num-frames 9 --steps 4)
if "$FERRY" generate --model "$A14B" --prompt "a fox" --image "$FIX/image_other.png" "${a14b[@]}" --device emu \
    --offload layerwise --guidance-scale-2 3 --output "$T/a14b.mp4" >"$T/gen" 2>&1 && [ -s "$T/a14b.mp4" ]; then
    has "i2v-a14b: the switch" "$T/gen" "transformer_2 2 steps from step 2"
else
    bad "i2v-a14b generate: exit $?"
    cat "$T/gen"
fi
"$FERRY" plan --model "$A14B" "${a14b[@]}" --device emu --offload layerwise >"$T/plan" 2>&1 || bad "i2v-a14b plan: exit $?"
has "i2v-a14b plan: transformer_2" "$T/plan" "transformer_2 blocks.1"
if grep -q "image_encoder" "$T/plan"; then bad "i2v-a14b plan: an image encoder"; else ok; fi
"$FERRY" info "$A14B" >"$T/info" 2>&1 || bad "i2v-a14b info: exit $?"
has "i2v-a14b info: experts" "$T/info" "transformer_2 (low noise)"
has "i2v-a14b info: modes" "$T/info" "image to video, --image required"

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
