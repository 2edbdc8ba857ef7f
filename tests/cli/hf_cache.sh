#!/usr/bin/env bash
# Model ids resolve in a local Hugging Face cache laid out as huggingface_hub
# lays it out (refs/, snapshots/ of symlinks into blobs/), at main, a branch
# or a commit; --variant reads diffusers' variant files (single and sharded);
# a model, revision or variant that is not there is one clear line, exit 1,
# and nothing is downloaded.
# usage: bash hf_cache.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" hf_cache
SIZES=(--height 64 --width 64 --num-frames 5 --max-sequence-length 16)
RUN=(--prompt "a red fox" --steps 2 --seed 3 --device cpu)
MAIN=1111111111111111111111111111111111111111
OLD=2222222222222222222222222222222222222222

# snapshot COMMIT SOURCE_FOLDER: every file a symlink into blobs/, as the hub does.
REPO=$T/hf/hub/models--Wan-AI--Wan2.1-T2V-Tiny-Diffusers
snapshot() {
    local commit=$1 src=$2 f rel blob
    mkdir -p "$REPO/blobs" "$REPO/refs"
    while IFS= read -r f; do
        rel=${f#"$src"/}
        blob=$(sha256sum "$f" | cut -d' ' -f1)
        cp "$f" "$REPO/blobs/$blob"
        mkdir -p "$(dirname "$REPO/snapshots/$commit/$rel")"
        ln -s "$REPO/blobs/$blob" "$REPO/snapshots/$commit/$rel"
    done < <(find "$src" -type f)
}
# The main snapshot has bf16 variants: the transformer sharded, the text encoder single.
cp -r "$MODEL" "$T/src"
"$FERRY" shard "$MODEL/transformer" "$T/v16" --max-shard-size 20KB --dtype bf16 \
    --stem diffusion_pytorch_model.bf16 >/dev/null 2>&1 || bad "shard the transformer variant"
mv "$T/v16/diffusion_pytorch_model.bf16.safetensors.index.json" \
    "$T/src/transformer/diffusion_pytorch_model.safetensors.index.bf16.json"
mv "$T/v16/"diffusion_pytorch_model.bf16-*.safetensors "$T/src/transformer/"
"$FERRY" shard "$MODEL/text_encoder" "$T/t16" --max-shard-size 1GB --dtype bf16 --stem model.bf16 \
    >/dev/null 2>&1 || bad "shard the text encoder variant"
mv "$T/t16/model.bf16.safetensors" "$T/src/text_encoder/"
snapshot $MAIN "$T/src"
echo -n $MAIN >"$REPO/refs/main"
# An older commit on a branch, without variants.
snapshot $OLD "$MODEL"
echo $OLD >"$REPO/refs/v1"

ID=Wan-AI/Wan2.1-T2V-Tiny-Diffusers
export HF_HOME=$T/hf
frames() { cat "$1"_*.png | md5sum | cut -d' ' -f1; }
gen() { # output prefix, args...
    local out=$1
    shift
    "$FERRY" generate "${SIZES[@]}" "${RUN[@]}" "$@" --output "$T/$out.png" >"$T/$out.txt" 2>&1 ||
        bad "generate $out: $(tail -2 "$T/$out.txt")"
}
gen folder --model "$MODEL"
gen id --model $ID
gen branch --model $ID --revision v1
gen commit --model $ID --revision $OLD
gen variant --model $ID --variant bf16
gen stored --model "$MODEL" --storage-dtype bf16
for run in id branch commit; do
    if [ "$(frames "$T/$run")" = "$(frames "$T/folder")" ]; then ok; else bad "$run differs from the folder"; fi
done
if [ "$(frames "$T/variant")" = "$(frames "$T/stored")" ]; then ok; else bad "--variant bf16 differs from bf16 storage"; fi
has "variant fallback named" "$T/variant.txt" "no bf16 weight files for vae: loaded as stored"
HF_HOME= HF_HUB_CACHE=$T/hf/hub "$FERRY" info $ID >"$T/info.txt" 2>&1 || bad "info through HF_HUB_CACHE"
has "info resolves the id" "$T/info.txt" "snapshots/$MAIN"

expect() { # name, pattern, args...
    local name=$1 pattern=$2
    shift 2
    "$FERRY" "$@" >"$T/x.out" 2>"$T/x.err"
    local rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l <"$T/x.err")" -eq 1 ] && grep -q -- "$pattern" "$T/x.err"; then ok; else
        bad "$name: exit $rc"
        cat "$T/x.err"
    fi
}
G=(generate "${SIZES[@]}" "${RUN[@]}" --output "$T/bad.png")
expect "absent model" "Wan-AI/Absent: not a folder, and not in the Hugging Face cache .*never downloads" \
    "${G[@]}" --model Wan-AI/Absent
expect "absent revision" "revision \"v9\" is not in the Hugging Face cache" "${G[@]}" --model $ID --revision v9
expect "absent variant" "no component has weights of variant fp16" "${G[@]}" --model $ID --variant fp16
expect "revision of a folder" "applies to a model id" "${G[@]}" --model "$MODEL" --revision v1
echo "not a commit" >"$REPO/refs/broken"
expect "damaged ref" "does not hold a commit hash" "${G[@]}" --model $ID --revision broken
expect "bad variant name" "a variant is a plain name" "${G[@]}" --model $ID --variant ../x
if [ ! -e "$T/bad.png" ] && [ -z "$(ls "$T"/bad_*.png 2>/dev/null)" ]; then ok; else bad "a failed run left output"; fi
finish
