#!/usr/bin/env bash
# GGUF transformers (--transformer FILE.gguf with --model DIR), written here
# from the golden fixture model in the original Wan names, as city96's files
# have them (tests/support/wan_single_files.py, then gguf_write.py): F32 gives the
# folder's video bit for bit, F16/BF16 the folder's under --storage-dtype
# f16/bf16; quantised files run on every plan with their blocks stored and
# moved quantised (the plan's block bytes), verify holds the transformer to
# the quantised tolerance; the K types run on the demo model (rows of 1536).
# Bad files: one line naming the file, exit 1. (--config: the fixture's
# 16-wide heads are no shape Wan's inference knows.)
# usage: bash gguf.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
FIX=$FIXTURES/wan-tiny/fixtures
WRITER="$(dirname "$0")/../support/gguf_write.py"
SINGLE="$(dirname "$0")/../support/wan_single_files.py"
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" gguf
PY=
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    bad "no python3 with numpy (scripts/setup-debian.sh installs python3-numpy)"
    finish
    exit 1
fi
SIZES=(--height 64 --width 64 --num-frames 5 --max-sequence-length 16)
RUN=(--prompt "a red fox" --steps 2 --seed 7)
ST=$T/wan_transformer.safetensors
"$PY" "$SINGLE" transformer "$MODEL" "$ST" >"$T/single.txt" 2>&1 || bad "original names: $(tail -1 "$T/single.txt")"

write() { # type out [writer flags...]
    local type=$1 out=$2
    shift 2
    "$PY" "$WRITER" "$ST" "$out" "$type" "$@" >"$out.txt" 2>&1 || bad "writing $out: $(tail -1 "$out.txt")"
}
for t in f32 f16 bf16 q8_0 q4_0; do write $t "$T/$t.gguf"; done
has "q8_0 file holds q8_0 tensors" "$T/q8_0.gguf.txt" "q8_0: "

frames() { cat "$1"_*.png | md5sum | cut -d' ' -f1; }
gen() { # output prefix, args...
    local out=$1
    shift
    "$FERRY" generate "${SIZES[@]}" "${RUN[@]}" "$@" --output "$T/$out.png" >"$T/$out.txt" 2>&1 ||
        bad "generate $out: $(tail -2 "$T/$out.txt")"
}

# Lossless: F32 is the folder exactly; F16/BF16 the folder converted at load.
gen ref --model "$MODEL" --device cpu
gen f32 --model "$MODEL" --device cpu --config "$MODEL" --transformer "$T/f32.gguf"
gen f32emu --model "$MODEL" --device emu --offload layerwise --storage-dtype none --config "$MODEL" --transformer "$T/f32.gguf"
for run in f32 f32emu; do
    if [ "$(frames "$T/$run")" = "$(frames "$T/ref")" ]; then ok; else bad "$run: F32 GGUF differs from the folder"; fi
done
for d in f16 bf16; do
    gen "st_$d" --model "$MODEL" --device emu --storage-dtype $d
    gen "gg_$d" --model "$MODEL" --device emu --storage-dtype $d --config "$MODEL" --transformer "$T/$d.gguf"
    if [ "$(frames "$T/gg_$d")" = "$(frames "$T/st_$d")" ]; then ok; else bad "$d GGUF differs from --storage-dtype $d"; fi
done
if "$FERRY" verify "$MODEL" "$FIX" --component transformer,pipeline --config "$MODEL" --transformer "$T/f32.gguf" >"$T/v32.txt" 2>&1
then ok; else bad "verify F32 GGUF: $(tail -3 "$T/v32.txt")"; fi

# Quantised: every plan runs and gives the CPU's video; blocks stay quantised.
for q in q8_0 q4_0; do
    gen "$q" --model "$MODEL" --device cpu --config "$MODEL" --transformer "$T/$q.gguf"
    for plan in "--offload layerwise" "--offload sequential" "--offload layerwise --max-memory cpu=200KB"; do
        name="$q-$(echo "$plan" | tr -cd 'a-z0-9')"
        # shellcheck disable=SC2086
        gen "$name" --model "$MODEL" --device emu --storage-dtype none $plan --config "$MODEL" --transformer "$T/$q.gguf"
        if [ "$(frames "$T/$name")" = "$(frames "$T/$q")" ]; then ok; else bad "$name differs from the cpu run"; fi
    done
    if [ "$(frames "$T/$q")" != "$(frames "$T/ref")" ]; then ok; else bad "$q: no rounding at all?"; fi
done
has "disk tier with a GGUF" "$T/q8_0-offloadlayerwisemaxmemorycpu200.txt" "disk "
if "$FERRY" verify "$MODEL" "$FIX" --component transformer --config "$MODEL" --transformer "$T/q8_0.gguf" >"$T/vq8.txt" 2>&1
then ok; else bad "verify Q8_0 GGUF: $(tail -3 "$T/vq8.txt")"; fi
has "quantised tolerance named" "$T/vq8.txt" "GGUF transformer weights: compared at 2e-02"
"$FERRY" verify "$MODEL" "$FIX" --component pipeline --config "$MODEL" --transformer "$T/q8_0.gguf" >"$T/vp.txt" 2>&1
rc=$?
if [ $rc -eq 1 ]; then ok; else bad "verify pipeline with Q8_0: exit $rc"; fi
has "pipeline refused with GGUF" "$T/vp.txt" "cannot pass with a GGUF transformer"
block() { awk '$1 == "transformer" && $2 == "blocks.0" {print $3}' "$1"; }
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload layerwise --storage-dtype none >"$T/p32.txt" 2>&1 ||
    bad "plan f32"
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload layerwise --config "$MODEL" --transformer "$T/q4_0.gguf" \
    >"$T/pq4.txt" 2>&1 || bad "plan q4_0"
b32=$(block "$T/p32.txt")
bq4=$(block "$T/pq4.txt")
if [ -n "$b32" ] && [ -n "$bq4" ] && [ "$bq4" != "$b32" ]; then ok; else bad "plan: Q4_0 block bytes '$bq4' vs f32 '$b32'"; fi

# The K types: the demo model's FFN rows (1536) are whole 256-value blocks.
DEMO=(--height 32 --width 32 --num-frames 1 --steps 1 --max-sequence-length 16 --prompt "a fox" --seed 3)
if "$FERRY" demo --model-dir "$T/demo" "${DEMO[@]}" --output "$T/demo.png" >"$T/demo.txt" 2>&1; then ok; else
    bad "demo: $(tail -2 "$T/demo.txt")"
fi
"$PY" "$SINGLE" transformer "$T/demo" "$T/demo_wan.safetensors" >"$T/single.txt" 2>&1 || bad "demo original names"
for q in q4_k q5_k q6_k; do
    "$PY" "$WRITER" "$T/demo_wan.safetensors" "$T/d_$q.gguf" $q >"$T/d_$q.txt" 2>&1 || bad "writing demo $q"
    has "demo $q holds $q tensors" "$T/d_$q.txt" "$q: "
    "$FERRY" generate --model "$T/demo" "${DEMO[@]}" --device emu --offload layerwise --config "$T/demo" --transformer "$T/d_$q.gguf" \
        --output "$T/d_$q.png" >"$T/d_$q.run" 2>&1 || bad "generate demo $q: $(tail -2 "$T/d_$q.run")"
done

# Bad files: one line naming the file, exit 1. (--config: the fixture's
# 16-wide heads are no shape Wan's inference knows.)
refuse() { # name, expected text, args...
    local name=$1 text=$2
    shift 2
    "$FERRY" generate --model "$MODEL" "${SIZES[@]}" "${RUN[@]}" --output "$T/bad.png" "$@" >"$T/bad.out" 2>"$T/bad.err"
    local rc=$?
    if [ $rc -eq 1 ] && grep -q -- "$text" "$T/bad.err" && [ "$(grep -c . "$T/bad.err")" -eq 1 ]; then ok; else
        bad "$name: exit $rc, $(cat "$T/bad.err")"
    fi
    if ! ls "$T"/bad*.png >/dev/null 2>&1; then ok; else bad "$name left an output"; fi
}
size=$(stat -c %s "$T/q8_0.gguf")
head -c $((size - 100)) "$T/q8_0.gguf" >"$T/cut.gguf"
refuse truncated "cut.gguf: .*truncated" --config "$MODEL" --transformer "$T/cut.gguf"
head -c 300 "$T/q8_0.gguf" >"$T/cut_header.gguf"
refuse "truncated header" "cut_header.gguf: .*truncated" --config "$MODEL" --transformer "$T/cut_header.gguf"
{ printf 'GGML'; tail -c +5 "$T/q8_0.gguf"; } >"$T/magic.gguf"
refuse "bad magic" "magic.gguf: not a GGUF file" --config "$MODEL" --transformer "$T/magic.gguf"
write q8_0 "$T/q4_1.gguf" --bad-type 3
refuse "unknown type" "q4_1.gguf: tensor .* ggml type 3 (Q4_1)" --config "$MODEL" --transformer "$T/q4_1.gguf"
write q8_0 "$T/offset.gguf" --bad-offset 1048576
refuse "offset out of range" "offset.gguf: tensor .* ends past the end of the file" --config "$MODEL" --transformer "$T/offset.gguf"
write q8_0 "$T/llama.gguf" --arch llama
refuse "other architecture" "llama.gguf: general.architecture is \"llama\"" --config "$MODEL" --transformer "$T/llama.gguf"
refuse "missing file" "nothere.gguf" --config "$MODEL" --transformer "$T/nothere.gguf"
"$PY" "$WRITER" "$MODEL/transformer/diffusion_pytorch_model.safetensors" "$T/dnames.gguf" q8_0 >/dev/null 2>&1 ||
    bad "writing a diffusers-named GGUF"
refuse "diffusers names" "dnames.gguf: tensor .* is named as diffusers names it" --config "$MODEL" --transformer "$T/dnames.gguf"
finish
