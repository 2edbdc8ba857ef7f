#!/usr/bin/env bash
# Single-file checkpoints: the tiny Wan model rewritten, in this test, into
# the files users hold (ComfyUI's transformer with its model.diffusion_model.
# prefix, the Wan VAE and Wan's T5 in their original names, ComfyUI's scaled
# fp8 UMT5, an all-in-one file) gives exactly the frames of the diffusers
# folder; the configs the shapes imply (VAE, text encoder) match the folder's;
# broken files end in one line naming the file and the tensor, exit 1.
# usage: bash single_file.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
HELPER=$(dirname "$0")/../support/wan_single_files.py
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" single_file
RUN=(--height 64 --width 64 --num-frames 5 --max-sequence-length 16 --prompt "a red fox" --steps 2 --seed 7)

make_file() { # what, args...
    if python3 "$HELPER" "$@" >"$T/helper.out" 2>&1; then ok; else
        bad "wan_single_files.py $*"
        cat "$T/helper.out"
    fi
}
make_file transformer "$MODEL" "$T/dit.safetensors" --prefix model.diffusion_model.
make_file transformer "$MODEL" "$T/dit_wan.safetensors"
make_file vae "$MODEL" "$T/vae.safetensors"
make_file text_encoder "$MODEL" "$T/t5_wan.safetensors" --wan-names
make_file text_encoder "$MODEL" "$T/t5_fp8.safetensors" --fp8-scaled "$T/t5_fp8_reference.safetensors"
make_file all "$MODEL" "$T/all.safetensors"

# --config: the folder without weights. The tiny transformer's 16-wide heads
# are no Wan size, so its config comes from here; the VAE's and the text
# encoder's are inferred.
mkdir -p "$T/cfg/transformer"
cp -r "$MODEL/model_index.json" "$MODEL/scheduler" "$MODEL/tokenizer" "$T/cfg/"
cp "$MODEL/transformer/config.json" "$T/cfg/transformer/"

frames() { # output prefix -> the frames' checksum
    cat "$1"_[0-9][0-9][0-9][0-9].png 2>/dev/null | md5sum | cut -d" " -f1
}
gen() { # output name, args...
    local out=$1
    shift
    if "$FERRY" generate "${RUN[@]}" "$@" --output "$T/$out.png" >"$T/$out.txt" 2>&1; then ok; else
        bad "generate $out: $(tail -2 "$T/$out.txt")"
    fi
}
same() { # name, reference prefix, prefix
    if [ "$(frames "$T/$2")" = "$(frames "$T/$3")" ] && [ -f "$T/${3}_0000.png" ]; then ok; else
        bad "$1: frames differ from the folder's"
    fi
}

for device in cpu emu; do
    gen "ref_$device" --device "$device" --model "$MODEL"
    gen "files_$device" --device "$device" --config "$T/cfg" --transformer "$T/dit.safetensors" \
        --vae "$T/vae.safetensors" --text-encoder "$T/t5_wan.safetensors"
    same "three files ($device)" "ref_$device" "files_$device"
    gen "all_$device" --device "$device" --model "$T/all.safetensors" --config "$T/cfg"
    same "all-in-one ($device)" "ref_$device" "all_$device"
done
gen "mixed" --model "$MODEL" --config "$T/cfg" --transformer "$T/dit_wan.safetensors" --vae "$T/vae.safetensors"
same "folder and files" "ref_cpu" "mixed"
gen "layerwise" --device emu --max-memory 0=4MiB --offload layerwise --config "$T/cfg" \
    --transformer "$T/dit.safetensors" --vae "$T/vae.safetensors" --text-encoder "$T/t5_wan.safetensors"
gen "layerwise_ref" --device emu --max-memory 0=4MiB --offload layerwise --model "$MODEL"
same "layerwise" "layerwise_ref" "layerwise"

# ComfyUI's scaled fp8 UMT5: the same frames as a folder holding the weights
# it stands for (fp8 value x scale, rounded to bf16 as ferry stores them).
cp -r "$MODEL" "$T/fp8_reference"
cp "$T/t5_fp8_reference.safetensors" "$T/fp8_reference/text_encoder/model.safetensors"
gen "fp8_ref" --model "$T/fp8_reference"
gen "fp8" --model "$MODEL" --text-encoder "$T/t5_fp8.safetensors"
same "scaled fp8 text encoder" "fp8_ref" "fp8"

# plan and verify read single files too.
if "$FERRY" plan --device emu --max-memory 0=4MiB --config "$T/cfg" --transformer "$T/dit.safetensors" \
    --vae "$T/vae.safetensors" --text-encoder "$T/t5_wan.safetensors" --height 64 --width 64 --num-frames 5 \
    >"$T/plan.txt" 2>&1; then ok; else bad "plan with single files: $(tail -2 "$T/plan.txt")"; fi
if "$FERRY" verify "$T/cfg" "$FIXTURES/wan-tiny/fixtures" --config "$T/cfg" --transformer "$T/dit.safetensors" \
    --vae "$T/vae.safetensors" --text-encoder "$T/t5_wan.safetensors" >"$T/verify.txt" 2>&1; then ok; else
    bad "verify with single files: $(tail -3 "$T/verify.txt")"
fi

# ---- broken files: exit 1, one line naming the file and the tensor ----------
edit() { # out, edits...
    local out=$1
    shift
    make_file edit "$T/dit.safetensors" "$T/$out" "$@"
}
edit bad_name.safetensors --rename model.diffusion_model.blocks.0.self_attn.q.weight \
    model.diffusion_model.blocks.0.self_attn.x.weight
edit missing.safetensors --drop model.diffusion_model.blocks.1.ffn.2.bias
make_file edit "$T/t5_fp8.safetensors" "$T/orphan_scale.safetensors" --drop encoder.block.0.layer.0.SelfAttention.q.weight
make_file edit "$T/all.safetensors" "$T/twice.safetensors" --copy vae.conv1.weight conv1.weight
mkdir -p "$T/cfg_bare"
cp -r "$MODEL/model_index.json" "$MODEL/scheduler" "$MODEL/tokenizer" "$T/cfg_bare/"

refused() { # name, expected message, args...
    local name=$1 want=$2
    shift 2
    "$FERRY" generate "${RUN[@]}" "$@" --output "$T/refused.png" >"$T/refused.txt" 2>&1
    local rc=$?
    if [ "$rc" -eq 1 ]; then ok; else bad "$name: exit $rc, expected 1"; fi
    if [ "$(grep -c 'error' "$T/refused.txt")" -eq 1 ]; then ok; else bad "$name: not one error line"; fi
    has "$name" "$T/refused.txt" "$want"
    if ls "$T"/refused* 2>/dev/null | grep -q png; then bad "$name: wrote frames"; else ok; fi
}
files=(--vae "$T/vae.safetensors" --text-encoder "$T/t5_wan.safetensors")
refused "unknown name" "bad_name.safetensors: tensor 'model.diffusion_model.blocks.0.self_attn.x.weight' is no Wan" \
    --config "$T/cfg" --transformer "$T/bad_name.safetensors" "${files[@]}"
refused "missing tensor" "missing.safetensors: no tensor 'blocks.1.ffn.2.bias'" \
    --config "$T/cfg" --transformer "$T/missing.safetensors" "${files[@]}"
refused "wrong flag" "dit.safetensors: tensor '.*' is a transformer weight, not a vae one" \
    --model "$MODEL" --vae "$T/dit.safetensors"
refused "no config from the shapes" "cannot infer the transformer's config: tensor 'patch_embedding.weight'" \
    --config "$T/cfg_bare" --transformer "$T/dit.safetensors" "${files[@]}"
refused "a diffusers file" "is named as diffusers names it" \
    --model "$MODEL" --transformer "$MODEL/transformer/diffusion_pytorch_model.safetensors"
refused "scale without its weight" "orphan_scale.safetensors: tensor 'encoder.block.0.layer.0.SelfAttention.q.scale_weight'" \
    --model "$MODEL" --text-encoder "$T/orphan_scale.safetensors"
refused "two names for one tensor" "tensors '.*conv1.weight' and '.*conv1.weight' both stand for 'quant_conv.weight'" \
    --model "$T/twice.safetensors" --config "$T/cfg"
refused "component missing" "no text_encoder: pass its weights with --text-encoder FILE" \
    --config "$T/cfg" --transformer "$T/dit.safetensors" --vae "$T/vae.safetensors"
refused "not safetensors" "config.json: header length" --model "$MODEL" --vae "$MODEL/vae/config.json"
finish
