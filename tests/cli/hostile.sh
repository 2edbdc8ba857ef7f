#!/usr/bin/env bash
# Hostile and unlucky inputs: edited configs, files that are not regular
# files, swapped component classes, misaligned safetensors data, a model
# rewritten during a run, signals at every stage, temporary outputs of dead
# processes. Every case ends in one `ferry: error:` line naming the file (and
# key) and a non-zero exit, or in the right result; never a crash, a hang or
# a leftover file. Broken models are folders of symlinks to the fixtures plus
# edited copies; the fixtures are never touched.
# usage: bash hostile.sh FERRY_BINARY FIXTURES_DIR
source "$(dirname "$0")/common.bash" hostile
FERRY=$1
MODEL=$2/wan-tiny/model
COMPONENTS="scheduler text_encoder tokenizer transformer vae"
# timeout: a regression to a hang fails the case instead of stalling the suite.
SMALL=(timeout 120 "$FERRY" generate --prompt fox --height 16 --width 16 --num-frames 1 --steps 2
    --max-sequence-length 16)

# expect NAME RC NEEDLE -- COMMAND...: exit status RC, one stderr line `ferry: error: ...NEEDLE...`.
expect() {
    local name=$1 want=$2 needle=$3
    shift 4
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    local lines
    lines=$(grep -v '^ferry: warn: ' "$T/err" | grep -v '^settings     ' | grep -vc '^denoising: ')
    if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && grep -q '^ferry: error: ' "$T/err" &&
        grep -qF -- "$needle" "$T/err"; then
        ok
    else
        bad "$name: exit $rc (want $want), $lines stderr line(s), want \"$needle\":"
        sed 's/^/    /' "$T/err"
    fi
}

# A model folder of symlinks; an edited copy of model_index.json.
new_model() {
    local dir=$T/$1
    mkdir -p "$dir"
    for c in $COMPONENTS; do ln -s "$MODEL/$c" "$dir/$c"; done
    cp "$MODEL/model_index.json" "$dir/"
    chmod u+w "$dir/model_index.json"
    echo "$dir"
}

# The component as a folder of symlinks with writable copies of its JSON files.
own_component() {
    local dir=$1 comp=$2
    rm "$dir/$comp"
    mkdir "$dir/$comp"
    for f in "$MODEL/$comp"/*; do ln -s "$f" "$dir/$comp/"; done
    for f in "$dir/$comp"/*.json; do
        cp --remove-destination "$(readlink "$f")" "$f"
        chmod u+w "$f"
    done
}

# set_key FILE KEY JSON_VALUE
set_key() {
    python3 -c 'import json,sys; p=sys.argv[1]; j=json.load(open(p)); j[sys.argv[2]]=json.loads(sys.argv[3]); json.dump(j, open(p,"w"))' \
        "$1" "$2" "$3"
}

# ---- Config values used in arithmetic ---------------------------------------------------
d=$(new_model patch0)
own_component "$d" transformer
set_key "$d/transformer/config.json" patch_size '[1, 0, 2]'
expect "patch_size with a 0" 1 "$d/transformer/config.json: key \"patch_size\" entry 1 is 0, expected an integer from 1 to 64" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"
for key in scale_factor_spatial scale_factor_temporal; do
    for v in 0 4611686018427387904 -8; do
        d=$(new_model "$key$v")
        own_component "$d" vae
        set_key "$d/vae/config.json" "$key" "$v"
        expect "$key $v" 1 "$d/vae/config.json: key \"$key\" is $v, expected an integer from 1 to 64" -- \
            "${SMALL[@]}" --model "$d" --output "$T/o.png"
    done
done
d=$(new_model spatial16)
own_component "$d" vae
set_key "$d/vae/config.json" scale_factor_spatial 16
expect "scale_factor_spatial against the layers" 1 "$d/vae/config.json: key \"scale_factor_spatial\" is 16 but the VAE's layers downsample 8x" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"

# ---- Files that are not regular files ------------------------------------------------------
d=$(new_model fifo_weights)
own_component "$d" transformer
rm "$d/transformer/diffusion_pytorch_model.safetensors"
mkfifo "$d/transformer/diffusion_pytorch_model.safetensors"
expect "weights that are a FIFO" 1 "$d/transformer/diffusion_pytorch_model.safetensors: is a FIFO, not a regular file" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"
d=$(new_model fifo_shard)
rm "$d/transformer"
if "$FERRY" shard "$MODEL/transformer" "$d/transformer" --max-shard-size 50KB >/dev/null 2>&1; then
    shard=$(ls "$d/transformer" | grep -- '-00002-of-' | head -n 1)
    rm "$d/transformer/$shard"
    mkfifo "$d/transformer/$shard"
    expect "a shard that is a FIFO" 1 "$d/transformer/$shard: is a FIFO, not a regular file" -- \
        "${SMALL[@]}" --model "$d" --output "$T/o.png"
else
    bad "could not shard the transformer"
fi
d=$(new_model fifo_tokenizer)
own_component "$d" tokenizer
rm "$d/tokenizer/spiece.model"
mkfifo "$d/tokenizer/spiece.model"
expect "spiece.model that is a FIFO" 1 "$d/tokenizer/spiece.model: is a FIFO, not a regular file" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"
rm "$d/tokenizer/spiece.model"
ln -s /dev/zero "$d/tokenizer/spiece.model"
expect "spiece.model linked to /dev/zero" 1 "$d/tokenizer/spiece.model: is a character device, not a regular file" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"
rm "$d/tokenizer/spiece.model"
truncate -s 300M "$d/tokenizer/spiece.model"
expect "spiece.model far too large" 1 "$d/tokenizer/spiece.model: 314572800 bytes is too large for a sentencepiece model" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"
d=$(new_model fifo_config)
own_component "$d" scheduler
rm "$d/scheduler/scheduler_config.json"
mkfifo "$d/scheduler/scheduler_config.json"
expect "a config that is a FIFO" 1 "$d/scheduler/scheduler_config.json" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"

# ---- Component classes in model_index.json -------------------------------------------------
d=$(new_model swapped)
sed -i 's/"AutoencoderKLWan"/"WanTransformer3DModel"/' "$d/model_index.json"
expect "a swapped component class" 1 "$d/model_index.json: \"vae\" is [diffusers, WanTransformer3DModel]; WanPipeline's vae must be a diffusers class: AutoencoderKLWan" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"
d=$(new_model unknown)
sed -i 's/"UMT5EncoderModel"/"CLIPTextModel"/' "$d/model_index.json"
expect "an unknown text encoder class" 1 "$d/model_index.json: \"text_encoder\" is [transformers, CLIPTextModel]" -- \
    "${SMALL[@]}" --model "$d" --output "$T/o.png"
d=$(new_model fast_tokenizer)
sed -i 's/"T5Tokenizer"/"T5TokenizerFast"/' "$d/model_index.json"
"${SMALL[@]}" --model "$d" --output "$T/fast.png" >/dev/null 2>"$T/err" && [ -s "$T/fast.png" ] && ok ||
    { bad "T5TokenizerFast (as diffusers writes it) refused"; cat "$T/err"; }

# ---- Misaligned tensor data: a header of odd length (legal) reads the same weights ----------------
d=$(new_model misaligned)
own_component "$d" transformer
rm "$d/transformer/diffusion_pytorch_model.safetensors"
python3 - "$MODEL/transformer/diffusion_pytorch_model.safetensors" "$d/transformer/diffusion_pytorch_model.safetensors" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = b[8:8 + n] + b" " * (1 + (8 + n) % 2)  # an odd header end: f32 data off by 1 or 3 bytes
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b[8 + n:])
PY
"${SMALL[@]}" --model "$MODEL" --output "$T/aligned.png" >/dev/null 2>&1
"${SMALL[@]}" --model "$d" --output "$T/misaligned.png" >/dev/null 2>"$T/err"
if [ -s "$T/misaligned.png" ] && cmp -s "$T/aligned.png" "$T/misaligned.png" && grep -q "not a multiple of 8" "$T/err"; then
    ok
else
    bad "misaligned tensor data: want the same image and a warning"; cat "$T/err"
fi

# ---- A weights file rewritten in place during a run: an error, not a different video --------------------
# (Read through the mapping, the new bytes would reach the remaining steps.)
d=$(new_model rewritten)
own_component "$d" transformer
rm "$d/transformer/diffusion_pytorch_model.safetensors"
cp "$MODEL/transformer/diffusion_pytorch_model.safetensors" "$d/transformer/"
chmod u+w "$d/transformer/diffusion_pytorch_model.safetensors"
# Checked before every step: the run stops at the next one (steps here are
# slow enough that the write always lands mid-run).
timeout 300 "$FERRY" generate --model "$d" --prompt fox --height 256 --width 256 --num-frames 17 --steps 10000 \
    --max-sequence-length 16 --output "$T/rewritten.png" >"$T/rewritten.log" 2>&1 &
pid=$!
for _ in $(seq 1200); do grep -q "denoising: step" "$T/rewritten.log" && break; sleep 0.05; done
# Same size, other bytes: the last 4 bytes of the last tensor.
f=$d/transformer/diffusion_pytorch_model.safetensors
printf '\000\000\200\077' | dd of="$f" bs=1 seek=$(($(stat -c %s "$f") - 4)) conv=notrunc status=none
wait "$pid"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "^ferry: error: $d/transformer/diffusion_pytorch_model.safetensors: the file changed while ferry read it (it was written to)" \
    "$T/rewritten.log" && [ ! -e "$T/rewritten.png" ]; then
    ok
else
    bad "a model file rewritten during the run: exit $rc"; tail -3 "$T/rewritten.log"
fi

# ---- Signals: SIGINT and SIGTERM stop every stage the same way, no output left --------------------------
mkdir "$T/seq"
for spec in "INT:loading vae" "TERM:text encoder" "TERM:denoising" "INT:vae decode" "INT:write" "TERM:write"; do
    sig=${spec%%:*}
    want=$([ "$sig" = TERM ] && echo 143 || echo 130)
    FERRY_TEST_RAISE="$spec" expect "SIG$spec" "$want" "(SIG$sig); no output was written" -- \
        "${SMALL[@]}" --num-frames 9 --model "$MODEL" --output "$T/seq/f_%04d.png"
    if [ -n "$(ls -A "$T/seq")" ]; then bad "SIG$spec left files:"; ls "$T/seq"; rm -f "$T/seq"/*; fi
done
FERRY_TEST_RAISE="TERM:write" expect "SIGTERM writing an mp4" 143 "while writing $T/v.mp4 (SIGTERM)" -- \
    "${SMALL[@]}" --num-frames 9 --model "$MODEL" --output "$T/v.mp4"
if ls "$T"/v.mp4* >/dev/null 2>&1; then bad "SIGTERM left an mp4 file"; fi
# A real SIGTERM from outside, mid-loop.
"$FERRY" generate --model "$MODEL" --prompt fox --height 16 --width 16 --num-frames 1 --steps 10000 \
    --max-sequence-length 16 --output "$T/term.png" >"$T/term.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "denoising: step" "$T/term.log" && break; sleep 0.05; done
kill -TERM "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 143 ] && grep -q "^ferry: error: stopped by the user after .* steps (SIGTERM)" "$T/term.log" &&
    [ ! -e "$T/term.png" ]; then
    ok
else
    bad "SIGTERM mid-loop: exit $rc"; tail -2 "$T/term.log"
fi

# ---- Temporary outputs of dead processes are removed; a live one's are kept ------------------------
dead=$(sh -c 'echo $$')
touch -d '2 hours ago' "$T/s.mp4.tmp.$dead.mp4" "$T/s.mp4.tmp.$$.mp4" "$T/f_0003.png.tmp.$dead.png"
"${SMALL[@]}" --model "$MODEL" --output "$T/s.mp4" >/dev/null 2>"$T/err"
if [ -s "$T/s.mp4" ] && [ ! -e "$T/s.mp4.tmp.$dead.mp4" ] && [ -e "$T/s.mp4.tmp.$$.mp4" ] &&
    grep -q "removed $T/s.mp4.tmp.$dead.mp4, a temporary output left by process $dead" "$T/err"; then
    ok
else
    bad "stale temporary mp4"; cat "$T/err"; ls "$T"
fi
"${SMALL[@]}" --num-frames 5 --model "$MODEL" --output "$T/f_%04d.png" >/dev/null 2>"$T/err"
if [ ! -e "$T/f_0003.png.tmp.$dead.png" ] && [ -e "$T/f_0004.png" ]; then ok; else bad "stale temporary frame"; ls "$T"; fi

# ---- Weights holding NaN: refused at load with the tensor's name (unless --no-check-weights) -------------
d=$(new_model nan)
own_component "$d" vae
rm "$d/vae/diffusion_pytorch_model.safetensors"
cp "$MODEL/vae/diffusion_pytorch_model.safetensors" "$d/vae/"
chmod u+w "$d/vae/diffusion_pytorch_model.safetensors"
python3 - "$d/vae/diffusion_pytorch_model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
t = json.loads(b[8:8 + n])["decoder.conv_out.bias"]
at = 8 + n + t["data_offsets"][0] + 4
b[at:at + 4] = struct.pack("<f", float("nan"))
open(p, "wb").write(b)
PY
expect "weights holding NaN" 1 "$d/vae/diffusion_pytorch_model.safetensors: tensor decoder.conv_out.bias holds NaN or infinity (element 1)" -- \
    "${SMALL[@]}" --model "$d" --output "$T/nan.png"
"${SMALL[@]}" --model "$d" --output "$T/nan.png" --no-check-weights >/dev/null 2>&1 && [ -s "$T/nan.png" ] && ok ||
    bad "--no-check-weights did not skip the scan"

# ---- --max-memory 0 means no limit nowhere: refused ------------------------------------------------
for mm in cpu=0 0=0 "0=6GiB,cpu=0"; do
    entry=${mm##*,}
    expect "--max-memory $mm" 2 "--max-memory: invalid value \"$entry\" (valid: a size above zero; leave a device (or cpu) out" -- \
        "${SMALL[@]}" --device emu --model "$MODEL" --max-memory "$mm" --output "$T/mm.png"
done

finish
