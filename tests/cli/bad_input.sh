#!/usr/bin/env bash
# Bad input to the CLI: every case exits non-zero (1 for bad files, 2 for a bad
# command line) with exactly one line on stderr, `ferry: error: ...`, naming the
# file or flag at fault, and never a crash. Broken models are temporary folders
# of symlinks to the fixtures plus edited copies; the fixtures are never touched.
# usage: bash bad_input.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
FIX=$FIXTURES/wan-tiny/fixtures
T=$(mktemp -d "${TMPDIR:-/tmp}/ferry-cli-bad-XXXXXX")
trap 'rm -rf "$T"' EXIT
passed=0
failed=0
COMPONENTS="scheduler text_encoder tokenizer transformer vae"

# expect NAME RC NEEDLE -- COMMAND...: exit status RC, one stderr line holding NEEDLE.
expect() {
    local name=$1 want=$2 needle=$3
    shift 4
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    [ -n "${SHOW:-}" ] && cat "$T/err"
    local lines
    lines=$(wc -l <"$T/err")
    if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && grep -q '^ferry: error: ' "$T/err" &&
        grep -qF -- "$needle" "$T/err"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $name: exit $rc (want $want), $lines stderr line(s), want \"$needle\":"
        sed 's/^/    /' "$T/err"
    fi
}

# A model folder of symlinks; components named in $2 are left out.
new_model() {
    local dir=$T/$1
    mkdir -p "$dir"
    for c in $COMPONENTS; do
        case " ${2:-} " in *" $c "*) continue ;; esac
        ln -s "$MODEL/$c" "$dir/$c"
    done
    cp "$MODEL/model_index.json" "$dir/"
    chmod u+w "$dir/model_index.json"
    echo "$dir"
}

# A component folder whose weights are symlinks and whose config is a writable copy.
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

# ---- Model folders -----------------------------------------------------------------
expect "model dir missing" 1 "$T/nope" -- "$FERRY" info "$T/nope"

d=$(new_model no_index)
rm "$d/model_index.json"
expect "model_index.json missing" 1 "expected model_index.json in $d" -- "$FERRY" info "$d"

d=$(new_model bad_index)
printf '{"_class_name": "WanPipeline",\n  "vae": [\n' >"$d/model_index.json"
expect "model_index.json not JSON" 1 "$d/model_index.json: not JSON" -- "$FERRY" info "$d"

d=$(new_model no_class)
python3 -c 'import json,sys; p=sys.argv[1]; j=json.load(open(p)); del j["_class_name"]; json.dump(j, open(p,"w"))' \
    "$d/model_index.json" 2>/dev/null || sed -i '/"_class_name"/d' "$d/model_index.json"
expect "model_index.json without _class_name" 1 "model_index.json: missing required key \"_class_name\"" -- \
    "$FERRY" info "$d"

d=$(new_model no_vae "vae")
expect "component folder missing" 1 "$d/vae: component folder missing" -- "$FERRY" info "$d"

d=$(new_model no_config)
own_component "$d" transformer
rm "$d/transformer/config.json"
expect "model config missing" 1 "$d/transformer/config.json" -- "$FERRY" info "$d"

d=$(new_model sched_no_class)
own_component "$d" scheduler
sed -i '/"_class_name"/d' "$d/scheduler/scheduler_config.json"
expect "config without a required key" 1 "scheduler_config.json: missing required key \"_class_name\"" -- \
    "$FERRY" verify "$d" "$FIX" --component scheduler

d=$(new_model truncated)
own_component "$d" transformer
rm "$d/transformer/diffusion_pytorch_model.safetensors"
head -c 100000 "$MODEL/transformer/diffusion_pytorch_model.safetensors" \
    >"$d/transformer/diffusion_pytorch_model.safetensors"
expect "truncated weights" 1 "$d/transformer/diffusion_pytorch_model.safetensors" -- "$FERRY" info "$d"

d=$(new_model garbage_weights)
own_component "$d" vae
rm "$d/vae/diffusion_pytorch_model.safetensors"
printf 'not a safetensors file at all' >"$d/vae/diffusion_pytorch_model.safetensors"
expect "garbage weights" 1 "$d/vae/diffusion_pytorch_model.safetensors" -- "$FERRY" info "$d"

d=$(new_model missing_shard "transformer")
if "$FERRY" shard "$MODEL/transformer" "$d/transformer" --max-shard-size 50KB >/dev/null 2>&1; then
    shard=$(ls "$d/transformer" | grep -- '-00002-of-' | head -n 1)
    rm "$d/transformer/$shard"
    expect "missing shard named by the index" 1 "$shard" -- "$FERRY" info "$d"
else
    failed=$((failed + 1))
    echo "FAIL: could not shard the transformer for the missing-shard case"
fi

# ---- verify ----------------------------------------------------------------------------
expect "fixture dir missing" 1 "$T/nofix" -- "$FERRY" verify "$MODEL" "$T/nofix"
expect "unknown component" 1 "unknown component \"unet\" (valid: tokenizer, text_encoder" -- \
    "$FERRY" verify "$MODEL" "$FIX" --component scheduler,unet
expect "bad run option value" 2 "--offload: invalid value \"fast\" (valid: none, model" -- \
    "$FERRY" verify "$MODEL" "$FIX" --offload fast
expect "contradicting options" 2 "--num-blocks-per-group" -- \
    "$FERRY" verify "$MODEL" "$FIX" --num-blocks-per-group 4 --offload layerwise
expect "verify without fixtures" 2 "expected MODEL_DIR and FIXTURE_DIR" -- "$FERRY" verify "$MODEL"

# ---- Command lines -------------------------------------------------------------------------
"$FERRY" >/dev/null 2>"$T/err"
if [ $? -eq 2 ] && grep -q '^usage: ferry' "$T/err"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL: no command: want exit 2 and the usage on stderr"
fi
expect "unknown command" 2 "unknown command \"bogus\"" -- "$FERRY" bogus
expect "unknown global option" 2 "unknown option \"--bogus\"" -- "$FERRY" --bogus info
expect "info without a folder" 2 "info: expected MODEL_DIR" -- "$FERRY" info
expect "info with an unknown option" 2 "unknown option \"--fast\"" -- "$FERRY" info "$MODEL" --fast
expect "plan without a model" 2 "--model DIR is required" -- "$FERRY" plan

# ---- generate ---------------------------------------------------------------------------------
GEN=("$FERRY" generate --model "$MODEL" --prompt "a fox" --steps 1 --max-sequence-length 16)
expect "generate without a model" 2 "--model DIR is required" -- "$FERRY" generate --prompt x --output "$T/x.mp4"
expect "generate without an output" 2 "--output PATH is required" -- "$FERRY" generate --model "$MODEL" --prompt x
expect "generate with a bad size" 1 "multiples of 16" -- "${GEN[@]}" --height 40 --width 48 --num-frames 9 --output "$T/g.mp4"
expect "generate with bad frames" 2 "--num-frames \"0\"" -- "${GEN[@]}" --height 32 --width 48 --num-frames 0 --output "$T/g.mp4"
expect "generate to an unknown format" 1 ".gif" -- "${GEN[@]}" --height 32 --width 48 --num-frames 9 --output "$T/g.gif"
expect "generate under an impossible budget" 1 "budget" -- "${GEN[@]}" --height 32 --width 48 --num-frames 9 \
    --device emu --max-memory 0=1KiB --offload layerwise --output "$T/g.mp4"
expect "generate under an impossible host budget" 1 "raise it to at least" -- "${GEN[@]}" --height 32 --width 48 \
    --num-frames 9 --max-memory cpu=20KB --output "$T/g.mp4"
OTHER=$(new_model other)
sed -i 's/"WanPipeline"/"StableDiffusion3Pipeline"/' "$OTHER/model_index.json"
expect "generate on another model family" 1 "WanPipeline" -- "$FERRY" generate --model "$OTHER" \
    --prompt x --height 32 --width 48 --num-frames 9 --output "$T/g.mp4"
if ls "$T"/g.* "$T"/g.mp4.tmp.* >/dev/null 2>&1; then
    failed=$((failed + 1)); echo "FAIL: a failed generate left an output file behind"; ls "$T"
else
    passed=$((passed + 1))
fi

# ---- Run options out of range (refused at parse time, exit 2) ---------------------------------------
# A small run that succeeds; the cases below add one bad flag each.
SMALL=("$FERRY" generate --model "$MODEL" --prompt cat --height 16 --width 16 --num-frames 1 --steps 2
    --max-sequence-length 16)
# A slow emulated copy looked like a hang; timeout makes a regression fail, not stall the suite.
expect "emu bandwidth below 1MB/s" 2 "below the minimum of 1MB/s" -- \
    timeout 60 "${SMALL[@]}" --device emu --emu-bandwidth 1B/s --output "$T/r.png"
expect "prefetch depth too large" 2 "--prefetch-depth: invalid value \"2147483647\" (valid: an integer from 1 to 64)" -- \
    "${SMALL[@]}" --device emu --offload layerwise --prefetch-depth 2147483647 --output "$T/r.png"
expect "threads too many" 2 "--threads: invalid value \"100000\" (valid: 0 (all cores) or a count from 1 to 1024)" -- \
    "${SMALL[@]}" --threads 100000 --output "$T/r.png"
expect "guidance scale inf" 2 "--guidance-scale \"inf\": expected a finite number from -10000 to 10000" -- \
    "${SMALL[@]}" --guidance-scale inf --output "$T/r.png"
expect "guidance scale absurd" 2 "--guidance-scale \"1e308\": expected a finite number from -10000 to 10000" -- \
    "${SMALL[@]}" --guidance-scale 1e308 --output "$T/r.png"
expect "guidance scale 2 inf" 2 "--guidance-scale-2 \"inf\": expected a finite number from -10000 to 10000" -- \
    "${SMALL[@]}" --guidance-scale-2 inf --output "$T/r.png"
# Wan2.1 has one transformer: a second scale is refused (diffusers' rule), before any work.
expect "guidance scale 2 without experts" 1 "has one transformer (no boundary_ratio in model_index.json)" -- \
    "${SMALL[@]}" --guidance-scale-2 3 --output "$T/r.png"
expect "seed above 2^64-1" 2 "above the largest seed, 18446744073709551615" -- \
    "${SMALL[@]}" --seed 18446744073709551616 --output "$T/r.png"
expect "vae tile stride below 8" 2 "--vae-tile-stride: invalid value \"1\" (valid: N or HxW in pixels, each at least 8" -- \
    "${SMALL[@]}" --vae-tiling --vae-tile 1048576 --vae-tile-stride 1 --output "$T/r.png"
expect "collective timeout too long" 2 "at most 1000000" -- \
    "${SMALL[@]}" --collective-timeout 99999999999 --output "$T/r.png"

# ---- Contradictory flags ------------------------------------------------------------------------------
expect "device-map auto on cpu" 2 "--device-map auto places components on devices: use --device emu" -- \
    "${SMALL[@]}" --device cpu --device-map auto --output "$T/r.png"
for mm in "0=5GiB,0=6GiB" "5GiB,0=6GiB"; do
    expect "max-memory $mm" 2 "--max-memory: device 0 is given twice in \"$mm\"" -- \
        "${SMALL[@]}" --device emu --max-memory "$mm" --output "$T/r.png"
done
expect "max-memory cpu twice" 2 "--max-memory: cpu is given twice in \"cpu=1GiB,cpu=2GiB\"" -- \
    "${SMALL[@]}" --device emu --max-memory cpu=1GiB,cpu=2GiB --output "$T/r.png"
for mm in "," "0=5GiB," ",0=5GiB" "0=5GiB,,1=5GiB"; do
    expect "max-memory \"$mm\"" 2 "--max-memory: empty entry in \"$mm\"" -- \
        "${SMALL[@]}" --device emu --max-memory "$mm" --output "$T/r.png"
done
expect "fp8 scale without fp8 storage" 2 "--fp8-scale sets the scales of fp8 storage: add --storage-dtype" -- \
    "${SMALL[@]}" --fp8-scale tensor --output "$T/r.png"
expect "plan with a trace" 2 "plan: --trace: plan runs nothing" -- \
    "$FERRY" plan --model "$MODEL" --trace "$T/plan.json"
expect "verify names fp8 as the flag does" 1 "cannot pass with --storage-dtype fp8_e4m3:" -- \
    "$FERRY" verify "$MODEL" "$FIX" --component pipeline --storage-dtype fp8_e4m3

# warns NAME NEEDLE -- COMMAND...: exit 0, a `ferry: warn:` line holding NEEDLE.
warns() {
    local name=$1 needle=$2
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq 0 ] && grep '^ferry: warn: ' "$T/err" | grep -qF -- "$needle"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $name: exit $rc (want 0), want a warning with \"$needle\":"
        sed 's/^/    /' "$T/err"
    fi
}
warns "more resident blocks than the model has" "--resident-blocks 9999: emu:0 holds only" -- \
    "${SMALL[@]}" --device emu --offload layerwise --resident-blocks 9999 --output "$T/w1.png"
warns "larger groups than the model's blocks" "--num-blocks-per-group 9999: the largest component on emu:0 has" -- \
    "${SMALL[@]}" --device emu --offload group --num-blocks-per-group 9999 --output "$T/w2.png"

# ---- Output and trace paths: refused before the model is opened ------------------------------------------
# The model folder does not exist: the path's error coming first shows nothing was loaded.
NOMODEL=("$FERRY" generate --model "$T/nomodel" --prompt cat --height 16 --width 16 --num-frames 1)
mkfifo "$T/fifo"
expect "trace onto a FIFO" 1 "--trace $T/fifo: exists and is a FIFO, which ferry does not replace" -- \
    "${NOMODEL[@]}" --trace "$T/fifo" --output "$T/p.png"
if [ -p "$T/fifo" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: the FIFO was replaced"; fi
ln -s "$T/elsewhere.json" "$T/link.json"
expect "trace onto a symlink" 1 "--trace $T/link.json: exists and is a symbolic link" -- \
    "${NOMODEL[@]}" --trace "$T/link.json" --output "$T/p.png"
mkdir "$T/tracedir" "$T/video.mp4" "$T/frame.png"
expect "trace onto a folder" 1 "--trace $T/tracedir: exists and is a folder" -- \
    "${NOMODEL[@]}" --trace "$T/tracedir" --output "$T/p.png"
expect "trace in a missing folder" 1 "--trace $T/missing/t.json: the folder $T/missing does not exist" -- \
    "${NOMODEL[@]}" --trace "$T/missing/t.json" --output "$T/p.png"
expect "output onto a folder (mp4)" 1 "--output $T/video.mp4: exists and is a folder" -- \
    "${NOMODEL[@]}" --output "$T/video.mp4"
expect "output onto a folder (png)" 1 "--output $T/frame.png: exists and is a folder" -- \
    "${NOMODEL[@]}" --output "$T/frame.png"
expect "output in a missing folder" 1 "--output $T/missing/p.png: the folder $T/missing does not exist" -- \
    "${NOMODEL[@]}" --output "$T/missing/p.png"
expect "verify with a bad trace" 1 "--trace $T/tracedir: exists and is a folder" -- \
    "$FERRY" verify "$MODEL" "$FIX" --component scheduler --trace "$T/tracedir"
if ls "$T"/p.png "$T"/p.png.tmp.* >/dev/null 2>&1; then
    failed=$((failed + 1)); echo "FAIL: a refused output path left a file behind"
else
    passed=$((passed + 1))
fi

# A trace that fails after a finished video (its temporary name is taken:
# exec keeps bash's pid, the one ferry names it by) keeps the video.
bash -c 'mkdir "$0.tmp.$$" && exec "$@"' "$T/late.json" "${SMALL[@]}" --output "$T/late.png" --trace "$T/late.json" \
    >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 0 ] && [ -s "$T/late.png" ] && [ ! -e "$T/late.json" ] &&
    grep -q '^ferry: warn: --trace .*the video is kept without it' "$T/err"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)); echo "FAIL: a late trace failure: exit $rc, want 0, the video and a warning:"; cat "$T/err"
fi

# Several engines: one trace holds each engine's timeline as its own process.
"${SMALL[@]}" --device emu --device-map balanced --max-memory 0=8MiB,1=8MiB --trace "$T/multi.json" \
    --output "$T/multi.png" >/dev/null 2>"$T/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q '"process_name".*"ferry emu:1 (text_encoder transformer)"' "$T/multi.json" &&
    grep -q '"process_name".*"ferry emu:0 (vae)"' "$T/multi.json" && grep -q '"pid":2,"tid":1,"ts"' "$T/multi.json"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)); echo "FAIL: a trace of two engines: exit $rc, want both engines' processes"; cat "$T/err"
fi

# ---- shard ------------------------------------------------------------------------------------
expect "shard without a size" 2 "--max-shard-size is required" -- "$FERRY" shard "$MODEL/vae" "$T/s1"
expect "shard with a bad size" 2 "--max-shard-size: invalid value \"lots\"" -- \
    "$FERRY" shard "$MODEL/vae" "$T/s2" --max-shard-size lots
expect "shard input missing" 1 "$T/none.safetensors" -- \
    "$FERRY" shard "$T/none.safetensors" "$T/s3" --max-shard-size 1GB
expect "shard input not safetensors" 1 "config.json: expected a .safetensors file" -- \
    "$FERRY" shard "$MODEL/vae/config.json" "$T/s4" --max-shard-size 1GB
expect "shard folder without weights" 1 "no checkpoint in this folder" -- \
    "$FERRY" shard "$MODEL/scheduler" "$T/s5" --max-shard-size 1GB
d=$(new_model inplace)
own_component "$d" vae
expect "shard into its own folder" 1 "the output folder is the input folder" -- \
    "$FERRY" shard "$d/vae" "$d/vae/" --max-shard-size 100KB
if ls "$d/vae" | grep -q -- '-of-'; then
    failed=$((failed + 1))
    echo "FAIL: shard into its own folder wrote files"
else
    passed=$((passed + 1))
fi
expect "truncated shard input" 1 "$T/truncated/transformer/diffusion_pytorch_model.safetensors" -- \
    "$FERRY" shard "$T/truncated/transformer" "$T/s6" --max-shard-size 50KB
if [ -e "$T/s6" ]; then
    failed=$((failed + 1))
    echo "FAIL: a failed shard left files in $T/s6"
else
    passed=$((passed + 1))
fi

# A transformer file truncated while a cpu run reads it through its mapping:
# one line and exit 1, not a bus-error crash; no output file.
d=$(new_model shrinking transformer)
mkdir -p "$d/transformer"
cp "$MODEL/transformer/config.json" "$MODEL/transformer/diffusion_pytorch_model.safetensors" "$d/transformer/"
chmod u+w "$d/transformer/diffusion_pytorch_model.safetensors"
"$FERRY" generate --model "$d" --prompt fox --height 256 --width 256 --num-frames 17 --steps 10000 \
    --device cpu --output "$T/shrinking.png" >"$T/shrinking.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "denoising: step" "$T/shrinking.log" && break; sleep 0.1; done
truncate -s 1000 "$d/transformer/diffusion_pytorch_model.safetensors"
for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill "$pid" 2>/dev/null
wait "$pid"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "a model file was truncated or changed while ferry read it" "$T/shrinking.log" &&
    ! ls "$T"/shrinking* 2>/dev/null | grep -q png; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL: model truncated mid-run: exit $rc"
    tail -3 "$T/shrinking.log"
fi

echo "$passed passed, $failed failed"
test "$failed" -eq 0
