#!/usr/bin/env bash
# bf16/f16 storage: f32 weights converted once at load (the default on a GPU
# device, emu included) give exactly what a folder converted by `ferry shard
# --dtype bf16` gives, under every way the engine holds a host copy (pinned
# and converted by the pinning thread, resident, mapped, staged, read from
# disk and converted in place) and on the cpu; the whole pipeline stays within bf16's tolerance of diffusers; plans
# count the stored bytes.
# usage: bash storage.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" storage
SIZES=(--height 64 --width 64 --num-frames 5 --max-sequence-length 16)
RUN=(--prompt "a red fox" --steps 2 --seed 7)

# A bf16 copy of the model, made by ferry shard (the transformer in several shards).
cp -r "$MODEL" "$T/bf16"
for c in transformer text_encoder; do
    rm -rf "${T:?}/bf16/$c"
    if "$FERRY" shard "$MODEL/$c" "$T/bf16/$c" --max-shard-size 20KB --dtype bf16 >"$T/shard.out" 2>&1; then ok; else
        bad "shard --dtype bf16 $c"
        cat "$T/shard.out"
    fi
done
if ls "$T/bf16/transformer/"diffusion_pytorch_model-00001-of-*.safetensors >/dev/null 2>&1; then ok; else
    bad "shard --dtype bf16 wrote no shards"
fi
"$FERRY" info "$T/bf16" >"$T/info.txt" 2>&1 || bad "info on the bf16 folder"
has "bf16 folder holds bf16" "$T/info.txt" "bf16"

frames() { # name prefix -> the frames' checksums
    cat "$1"_*.png | md5sum | cut -d' ' -f1
}
gen() { # output prefix, args...
    local out=$1
    shift
    "$FERRY" generate "${SIZES[@]}" "${RUN[@]}" "$@" --output "$T/$out.png" >"$T/$out.txt" 2>&1 ||
        bad "generate $out: $(tail -2 "$T/$out.txt")"
}
gen ref --model "$T/bf16" --device cpu
gen default --model "$MODEL" --device emu --offload layerwise
gen resident --model "$MODEL" --device emu --storage-dtype bf16
gen mapped --model "$MODEL" --device emu --offload layerwise --no-pin-cpu-memory
gen staged --model "$MODEL" --device emu --offload sequential --low-cpu-mem-usage
gen cpu --model "$MODEL" --device cpu --storage-dtype bf16
gen disk --model "$MODEL" --device emu --offload layerwise --max-memory cpu=200KB
gen diskcpu --model "$MODEL" --device cpu --storage-dtype bf16 --max-memory cpu=400KB
gen f32 --model "$MODEL" --device emu --storage-dtype none
want=$(frames "$T/ref")
for run in default resident mapped staged cpu disk diskcpu; do
    if [ "$(frames "$T/$run")" = "$want" ]; then ok; else bad "$run: bf16 storage differs from the bf16 folder"; fi
done
has "blocks on the disk tier" "$T/disk.txt" "disk "
has "blocks on the disk tier (cpu)" "$T/diskcpu.txt" "disk "
if [ "$(frames "$T/f32")" != "$want" ]; then ok; else bad "--storage-dtype none still converted"; fi

# Within bf16's tolerance of diffusers (f16 too), whatever the plan.
FIX=$FIXTURES/wan-tiny/fixtures
for args in "--device emu --storage-dtype bf16 --offload layerwise" "--device cpu --storage-dtype f16"; do
    # shellcheck disable=SC2086
    if "$FERRY" verify "$MODEL" "$FIX" --component text_encoder,transformer,pipeline $args >"$T/v.txt" 2>&1; then ok; else
        bad "verify $args"
        tail -5 "$T/v.txt"
    fi
done

# Plans count stored bytes: a streamed block halves; the VAE stays f32.
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload layerwise >"$T/p16.txt" 2>&1 || bad "plan (default)"
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload layerwise --storage-dtype none >"$T/p32.txt" 2>&1 ||
    bad "plan (none)"
has "default storage named" "$T/p16.txt" "storage      bf16 (default on a GPU device): converted weights"
block() { awk '$1 == "transformer" && $2 == "blocks.0" {print $3, $4}' "$1"; }
vae() { awk '$2 == "decoder.conv_in" {print $3, $4}' "$1"; }
if [ "$(block "$T/p16.txt")" != "$(block "$T/p32.txt")" ]; then ok; else bad "plan: block bytes unchanged by bf16"; fi
if [ "$(vae "$T/p16.txt")" = "$(vae "$T/p32.txt")" ]; then ok; else bad "plan: the VAE was converted"; fi
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device cpu >"$T/pcpu.txt" 2>&1 || bad "plan (cpu)"
if ! grep -q "storage" "$T/pcpu.txt"; then ok; else bad "cpu converted by default"; fi

# Bad values: one line, usage exit.
"$FERRY" shard "$MODEL/transformer" "$T/bad" --max-shard-size 1GB --dtype f8_e4m3 >/dev/null 2>"$T/bad.err"
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--dtype \"f8_e4m3\": use bf16 or f16" "$T/bad.err"; then ok; else bad "shard --dtype fp8: exit $rc"; fi
"$FERRY" plan --model "$MODEL" --storage-dtype int8 >/dev/null 2>"$T/bad.err"
rc=$?
if [ $rc -eq 2 ] && grep -q "bf16, f16, fp8_e4m3" "$T/bad.err"; then ok; else bad "--storage-dtype int8: exit $rc"; fi
finish
