#!/usr/bin/env bash
# The command line as a new user meets it: -q, unknown flags and "did you
# mean", the names users bring from diffusers, FastVideo and
# stable-diffusion.cpp, sizes as accelerate reads them, VAE tiles, options
# that change nothing said so, the settings line, --seed -1, --prompt-file,
# the settings stored in the files, --crf, --report-json, and the help.
# usage: bash usability.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
MODEL=$2/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" usability
RUN=(generate --model "$MODEL" -H 16 -W 16 --num-frames 1 --steps 2 --max-sequence-length 16)

expect() { # name, exit status, pattern, -- command...
    local name=$1 want=$2 pattern=$3
    shift 4
    "$@" >"$T/out.txt" 2>"$T/err.txt"
    local rc=$?
    if [ "$rc" -eq "$want" ] && grep -q -- "$pattern" "$T/err.txt"; then ok; else
        bad "$name: exit $rc (want $want), want \"$pattern\" in:"
        cat "$T/err.txt"
    fi
}
same() { # name, file a, file b
    if cmp -s "$2" "$3"; then ok; else bad "$1: $2 and $3 differ"; fi
}

# ---- -q: errors and warnings only, the video still written
"$FERRY" -q "${RUN[@]}" --prompt "a fox" -o "$T/q.png" 2>"$T/q.err"
if [ $? -eq 0 ] && [ -s "$T/q.png" ] && ! grep -q "settings\|denoising\|^video\|^time" "$T/q.err"; then ok; else
    bad "-q printed more than warnings:"
    cat "$T/q.err"
fi
"$FERRY" "${RUN[@]}" --prompt "a fox" -q -o "$T/q2.png" 2>"$T/q2.err"
if ! grep -q "denoising" "$T/q2.err"; then ok; else bad "-q after the command still draws the bar"; fi

# ---- unknown flags, missing values, did you mean, advice for other tools' flags
expect "trailing unknown flag" 2 'unknown option "--bogus"' -- "$FERRY" "${RUN[@]}" --prompt x -o "$T/x.png" --bogus
expect "trailing flag without its value" 2 'missing value for "--steps"' -- "$FERRY" "${RUN[@]}" --prompt x \
    -o "$T/x.png" --steps
expect "near miss" 2 "did you mean --num-inference-steps?" -- "$FERRY" "${RUN[@]}" --prompt x -o "$T/x.png" \
    --num-inference-step 2
expect "near miss of a run option" 2 "did you mean --offload?" -- "$FERRY" "${RUN[@]}" --prompt x -o "$T/x.png" \
    --offlaod layerwise
expect "sd.cpp --sampling-method" 2 "model folder's own scheduler" -- "$FERRY" "${RUN[@]}" --prompt x \
    -o "$T/x.png" --sampling-method euler
expect "sd.cpp --offload-to-cpu" 2 "--offload model" -- "$FERRY" "${RUN[@]}" --prompt x -o "$T/x.png" \
    --offload-to-cpu
expect "FastVideo --num-gpus" 2 "--device-map" -- "$FERRY" "${RUN[@]}" --prompt x -o "$T/x.png" --num-gpus 2

# ---- aliases: the same video as the canonical flags
"$FERRY" -q generate --model "$MODEL" --height 16 --width 16 --num-frames 1 --steps 2 --max-sequence-length 16 \
    --prompt "a fox" --negative-prompt "blur" --guidance-scale 4 --seed 3 --output "$T/canon.png" 2>/dev/null
"$FERRY" -q generate --model "$MODEL" -H 16 -W 16 --video-frames 1 --num-inference-steps 2 \
    --max_sequence_length 16 -p "a fox" -n "blur" --cfg-scale 4 --seed 3 -o "$T/alias.png" 2>/dev/null
same "diffusers/sd.cpp aliases" "$T/canon.png" "$T/alias.png"
# FastVideo's booleans: --flag False / True, underscores.
"$FERRY" -q "${RUN[@]}" --prompt "a fox" --seed 3 --dit_layerwise_offload True --vae-tiling False \
    --pin-cpu-memory False --device emu -o "$T/fv.png" 2>"$T/fv.err"
if [ $? -eq 0 ] && [ -s "$T/fv.png" ]; then ok; else bad "FastVideo booleans"; cat "$T/fv.err"; fi

# ---- sizes as accelerate reads them, ambiguity warned
for size in 6G 6.5GiB 6GB 0.5TB 6g; do
    "$FERRY" -q plan --model "$MODEL" -H 16 -W 16 --num-frames 1 --max-sequence-length 16 --device emu \
        --max-memory "0=$size" >/dev/null 2>"$T/size.err"
    if [ $? -eq 0 ]; then ok; else bad "--max-memory 0=$size refused"; cat "$T/size.err"; fi
done
expect "gigabits warned" 0 "means bits.*read as" -- "$FERRY" plan --model "$MODEL" -H 16 -W 16 --num-frames 1 \
    --max-sequence-length 16 --device emu --max-memory 6gb
expect "a bare number warned" 0 "without a unit is read as bytes" -- "$FERRY" plan --model "$MODEL" -H 16 -W 16 \
    --num-frames 1 --max-sequence-length 16 --device emu --max-memory 0=6000000000
expect "G alone warned" 0 "power of 2" -- "$FERRY" plan --model "$MODEL" -H 16 -W 16 --num-frames 1 \
    --max-sequence-length 16 --device emu --max-memory 6G
expect "a bad size" 2 "6 apples" -- "$FERRY" plan --model "$MODEL" --max-memory "6 apples"

# A bare number is bytes to --max-memory (accelerate's rule), so a rate needs its unit.
PLAN16=(plan --model "$MODEL" -H 16 -W 16 --num-frames 1 --max-sequence-length 16 --device emu)
while read -r rate hint; do
    expect "--emu-bandwidth $rate" 2 "--emu-bandwidth $rate: a rate needs its unit.*$hint" -- \
        "$FERRY" "${PLAN16[@]}" --emu-bandwidth "$rate"
done <<'CASES'
6 give e.g. 6GB/s
2.5 give e.g. 2.5GB/s
CASES
for rate in 6GB/s 6GB 500MiB/s 0; do
    "$FERRY" -q "${PLAN16[@]}" --emu-bandwidth "$rate" >/dev/null 2>"$T/rate.err"
    if [ $? -eq 0 ]; then ok; else bad "--emu-bandwidth $rate refused"; cat "$T/rate.err"; fi
done

# ---- VAE tiles imply tiling; a stride larger than the tile is still refused
expect "tile without --vae-tiling" 0 "wrote" -- "$FERRY" -v "${RUN[@]}" --prompt x --vae-tile 64 -o "$T/t.png"
expect "stride follows the tile" 0 "wrote" -- "$FERRY" -v "${RUN[@]}" --prompt x --vae-tile 16 -o "$T/t2.png"
expect "stride above the tile" 2 "larger than --vae-tile" -- "$FERRY" "${RUN[@]}" --prompt x --vae-tile 16 \
    --vae-tile-stride 32 -o "$T/t3.png"

# ---- options that change nothing here say so
expect "--record-stream" 0 "record-stream: .*changes nothing" -- "$FERRY" "${RUN[@]}" --prompt x --device emu \
    --offload group --use-stream --record-stream -o "$T/r.png"

# ---- the settings line before the progress bar; --seed -1 random and printed
"$FERRY" "${RUN[@]}" --prompt x --seed -1 -o "$T/s.png" --report-json "$T/s.json" 2>"$T/s.err"
has "settings line" "$T/s.err" "^settings     .*16x16, 1 frames, 2 steps, guidance 5, seed [0-9]*, UniPCMultistepScheduler (shift 3), plan none on cpu:0"
if awk '/^settings/ {s = NR} /^denoising/ && !d {d = NR} END {exit !(s && d && s < d)}' "$T/s.err"; then ok; else
    bad "the settings line is not before the progress bar"
fi
seed=$(sed -n 's/^settings.* seed \([0-9]*\),.*/\1/p' "$T/s.err")
has "the random seed in the report" "$T/s.json" "\"seed_text\":[[:space:]]*\"$seed\""
expect "a negative seed other than -1" 2 "non-negative integer (or -1" -- "$FERRY" "${RUN[@]}" --prompt x --seed -2 \
    -o "$T/s2.png"

# ---- --report-json: JSON, written whole, checked before any work
if python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['video']['frames']==1 and r['output']" \
    "$T/s.json"; then ok; else bad "--report-json is not the report"; cat "$T/s.json"; fi
if ls "$T" | grep -q "\.tmp\."; then bad "a temporary file was left"; ls "$T"; else ok; fi
expect "report into a missing folder" 1 "report-json" -- "$FERRY" "${RUN[@]}" --prompt x -o "$T/rj.png" \
    --report-json "$T/nowhere/r.json"
[ ! -e "$T/rj.png" ] && ok || bad "a refused --report-json still wrote the video"

# ---- --prompt-file: one video per line from one load, the same as one at a time
printf 'a fox\n\na cat in the rain\r\n' >"$T/prompts.txt"
"$FERRY" -q "${RUN[@]}" --seed 5 --prompt-file "$T/prompts.txt" -o "$T/pf.png" --report-json "$T/pf.json" 2>"$T/pf.err"
if [ $? -eq 0 ] && [ -s "$T/pf_001.png" ] && [ -s "$T/pf_002.png" ] && [ ! -e "$T/pf_003.png" ]; then ok; else
    bad "--prompt-file outputs"
    ls "$T"
    cat "$T/pf.err"
fi
"$FERRY" -q "${RUN[@]}" --seed 5 --prompt "a cat in the rain" -o "$T/one.png" 2>/dev/null
same "second prompt of the file" "$T/pf_002.png" "$T/one.png"
if python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert len(r)==2 and r[1]['settings']['prompt']=='a cat in the rain'" \
    "$T/pf.json"; then ok; else bad "--prompt-file report"; fi
expect "--prompt and --prompt-file" 2 "not both" -- "$FERRY" "${RUN[@]}" --prompt x --prompt-file "$T/prompts.txt" \
    -o "$T/x.png"
: >"$T/empty.txt"
expect "an empty prompt file" 1 "no prompts in it" -- "$FERRY" "${RUN[@]}" --prompt-file "$T/empty.txt" -o "$T/x.png"

# ---- the settings in the files: PNG text chunks, MP4 metadata; --crf
python3 - "$T/canon.png" <<'PY' && ok || bad "PNG text chunks"
import struct, sys
data, pos, text = open(sys.argv[1], "rb").read(), 8, {}
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"iTXt":
        key, rest = data[pos + 8:pos + 8 + n].split(b"\0", 1)
        text[key.decode()] = rest[2:].split(b"\0", 2)[2].decode()
    pos += 12 + n
assert text["prompt"] == "a fox" and text["negative_prompt"] == "blur", text
assert text["seed"] == "3" and text["num_inference_steps"] == "2" and text["guidance_scale"] == "4", text
PY
if "$FERRY" -q "${RUN[@]}" --prompt "a fox on ice" --seed 9 --num-frames 5 --crf 0 -o "$T/hq.mp4" 2>/dev/null; then
    if grep -q "a fox on ice" "$T/hq.mp4" && grep -q "num_inference_steps" "$T/hq.mp4"; then ok; else
        bad "MP4 metadata has no prompt"
    fi
    "$FERRY" -q "${RUN[@]}" --prompt "a fox on ice" --seed 9 --num-frames 5 --crf 51 -o "$T/lq.mp4" 2>/dev/null
    if [ "$(stat -c %s "$T/hq.mp4")" -gt "$(stat -c %s "$T/lq.mp4")" ]; then ok; else bad "--crf 0 is not larger"; fi
else
    echo "usability: no MP4 writer in this build, MP4 checks skipped"
fi
expect "--crf out of range" 2 "from 0 to 51" -- "$FERRY" "${RUN[@]}" --prompt x --crf 60 -o "$T/x.mp4"

# ---- help: every command with a line, the way to its help, %d not %%d, -o
"$FERRY" --help >"$T/help.txt"
for c in info verify shard generate plan demo; do has "ferry --help lists $c" "$T/help.txt" "^  $c  "; done
has "ferry --help points to CMD --help" "$T/help.txt" "ferry COMMAND --help"
"$FERRY" generate --help >"$T/gh.txt"
if grep -q "%%d" "$T/gh.txt"; then bad "generate --help prints %%d"; else ok; fi
has "generate --help: %d" "$T/gh.txt" "a path with %d"
has "generate --help: -o" "$T/gh.txt" "-o, --output PATH"
"$FERRY" demo --help >"$T/dh.txt"
has "demo --help: -o" "$T/dh.txt" "-o, --output PATH"
# --version and --help load none of the engine's libraries (CUDA, FFmpeg, MPI, BLAS): the
# executable answers them before it opens libferry-cli.so.
for flag in --version --help; do
    LD_DEBUG=files "$FERRY" $flag >/dev/null 2>"$T/ld.txt"
    if grep -q "libferry-cli\|libcuda\|libcublas\|libavcodec\|libmpi\|libopenblas" "$T/ld.txt"; then
        bad "ferry $flag loaded the engine's libraries:"
        grep -o "file=[^ ]*" "$T/ld.txt" | sort -u | head
    else
        ok
    fi
done
version=$(cat "$(dirname "$0")/../../VERSION")
if [ "$("$FERRY" --version)" = "ferry $version" ]; then ok; else bad "--version is not the VERSION file's"; fi

finish
