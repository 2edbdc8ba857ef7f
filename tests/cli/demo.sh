#!/usr/bin/env bash
# `ferry demo` needs no fixtures and no download: it writes a random-weight
# model to a temp folder, runs the pipeline on the emulated device under a
# budget sized from the plan, writes the video, prints the report and removes
# its model. An impossible budget fails in one line with no output file.
# usage: bash demo.sh FERRY_BINARY [FIXTURES_DIR (unused)]
set -u
FERRY=$1
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" demo
# The demo's temp model goes under $TMPDIR: point it at a folder of our own
# to see that nothing is left behind.
mkdir "$T/tmp"
export TMPDIR=$T/tmp

"$FERRY" demo --output "$T/x.mp4" >"$T/out.txt" 2>"$T/err.txt"
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "demo: exit $rc"; cat "$T/err.txt"; fi
if [ -s "$T/x.mp4" ]; then ok; else bad "demo: no video at $T/x.mp4"; fi
has "what it is" "$T/err.txt" "random weights, .* (8 transformer blocks of"
has "budget below the model" "$T/err.txt" "Emulated GPU (--device emu, copies at 25 GB/s): budget .* for the .* model (the plan needs"
has "the ring" "$T/err.txt" "Plan layerwise, prefetch depth 1: each component's blocks stream through a ring of 2 slots"
has "report: video" "$T/err.txt" "^video        13 frames, 96x64"
has "report: stages" "$T/err.txt" "^time         load .* denoising .* vae .* total"
has "report: peak vs budget" "$T/err.txt" "^device       peak .* MiB of .* MiB budget"
has "report: traffic and stall" "$T/err.txt" "^weights      .* MiB moved in .* uploads, stall .*% of the run"
if [ -z "$(ls -A "$T/tmp")" ]; then ok; else bad "demo left $(ls "$T/tmp") in TMPDIR"; fi

# The peak stays within the budget it chose, and the budget is below the model.
budget=$(sed -n 's/.*: budget \([0-9.]*\) MiB for the \([0-9.]*\) MiB model.*/\1 \2/p' "$T/err.txt")
if awk -v b="${budget% *}" -v m="${budget#* }" 'BEGIN { exit !(b > 0 && b < m) }'; then ok; else
    bad "budget/model \"$budget\" not below the model"
fi

# --model-dir keeps the model; it is a folder ferry can read.
"$FERRY" -q demo --model-dir "$T/model" --output "$T/y.mp4" --steps 1 --num-frames 1 --height 32 --width 32 \
    --offload group --num-blocks-per-group 2 >/dev/null 2>"$T/keep.err"
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/y.mp4" ]; then ok; else bad "demo --model-dir: exit $rc"; cat "$T/keep.err"; fi
if "$FERRY" info "$T/model" | grep -q "WanTransformer3DModel .* blocks.N x 8"; then ok; else bad "kept model: ferry info"; fi
# ... and refuses to write into it again (it is not empty).
"$FERRY" demo --model-dir "$T/model" --output "$T/z.mp4" >/dev/null 2>"$T/again.err"
rc=$?
if [ $rc -eq 1 ] && grep -q "not empty" "$T/again.err" && [ ! -e "$T/z.mp4" ]; then ok; else
    bad "demo into a non-empty folder: exit $rc"
    cat "$T/again.err"
fi

# --model wan2.2: two experts; the ring switches to transformer_2 mid-run, with the
# switch in the report, and the model is Wan2.2's folder layout.
"$FERRY" demo --model wan2.2 --model-dir "$T/m22" --output "$T/w.mp4" --steps 4 --num-frames 5 --height 32 \
    --width 32 >/dev/null 2>"$T/w22.err"
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/w.mp4" ]; then ok; else bad "demo --model wan2.2: exit $rc"; cat "$T/w22.err"; fi
has "wan2.2: what it is" "$T/w22.err" "Wan2.2 T2V-A14B-style model with random weights, .*: two experts of 8 transformer"
has "wan2.2: the switch" "$T/w22.err" "step [0-9]*: switching from transformer to transformer_2"
has "wan2.2: report" "$T/w22.err" "^experts      transformer [0-9]* steps, transformer_2 [0-9]* steps from step"
if "$FERRY" info "$T/m22" | grep -q "^transformer_2 .*WanTransformer3DModel .* blocks.N x 8"; then ok; else
    bad "wan2.2 model: ferry info"
fi
"$FERRY" demo --model wan3 --output "$T/v.mp4" >/dev/null 2>"$T/w3.err"
rc=$?
if [ $rc -eq 2 ] && grep -q "use wan2.1 or wan2.2" "$T/w3.err"; then ok; else bad "demo --model wan3: exit $rc"; fi

# An impossible budget: one line, exit 1, no video, no temp model left.
"$FERRY" demo --max-memory 0=1KiB --output "$T/bad.mp4" >"$T/bad.out" 2>"$T/bad.err"
rc=$?
if [ $rc -eq 1 ]; then ok; else bad "demo --max-memory 0=1KiB: exit $rc"; fi
if [ "$(wc -l <"$T/bad.err")" -eq 1 ] && grep -q "budget 1.00 KiB.*(raise --max-memory)" "$T/bad.err"; then ok; else
    bad "impossible budget: not one clear line"
    cat "$T/bad.err"
fi
if [ ! -e "$T/bad.mp4" ] && [ -z "$(ls -A "$T/tmp")" ]; then ok; else bad "impossible budget left files behind"; fi

# A bad flag is a usage error.
"$FERRY" demo --steps zero >/dev/null 2>"$T/usage.err"
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--steps \"zero\"" "$T/usage.err"; then ok; else bad "demo --steps zero: exit $rc"; fi

finish
