#!/usr/bin/env bash
# The CUDA backend is a library opened on first use: a CPU run loads none of
# the CUDA libraries, and where they cannot be loaded --device cuda is one
# clear line while --device cpu still runs.
# usage: bash lazy_cuda.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
MODEL=$2/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" lazy_cuda
BUILD=$(dirname "$FERRY")
GEN=(generate --model "$MODEL" --prompt "a fox" --height 16 --width 16 --num-frames 1 --steps 1 -q)

LD_DEBUG=libs "$FERRY" "${GEN[@]}" --device cpu -o "$T/cpu.mp4" >"$T/libs.txt" 2>&1 || bad "cpu run"
if grep -q "libcudart\|libcublas\|libnccl\|libferry-cuda" "$T/libs.txt"; then
    bad "a CPU run loaded CUDA libraries"
    grep "libcudart\|libcublas\|libnccl\|libferry-cuda" "$T/libs.txt" | head -5
else ok; fi

"$FERRY" "${GEN[@]}" --device cuda -o "$T/cuda.mp4" >"$T/cuda.txt" 2>&1
rc=$?
if [ ! -e "$BUILD/libferry-cuda.so" ]; then
    # Built without CUDA: refused before any work.
    if [ $rc -ne 0 ] && [ "$(wc -l <"$T/cuda.txt")" -eq 1 ]; then ok; else bad "--device cuda without CUDA"; cat "$T/cuda.txt"; fi
    finish
    exit $?
fi

# A copy of the programs whose CUDA library cannot be loaded (what a machine
# without the CUDA runtime sees).
mkdir "$T/bin"
cp -P "$FERRY" "$BUILD"/libferry-cli.so "$BUILD"/libferry.so* "$T/bin/"
echo "not a library" >"$T/bin/libferry-cuda.so"
export LD_LIBRARY_PATH="$T/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$T/bin/ferry" "${GEN[@]}" --device cpu -o "$T/cpu2.mp4" >"$T/cpu2.txt" 2>&1 || { bad "cpu run without CUDA"; cat "$T/cpu2.txt"; }
if cmp -s "$T/cpu.mp4" "$T/cpu2.mp4"; then ok; else bad "cpu output differs without CUDA"; fi
FERRY_EXPERIMENTAL_CUDA=1 "$T/bin/ferry" "${GEN[@]}" --device cuda -o "$T/cuda2.mp4" >"$T/cuda2.txt" 2>&1
rc=$?
if [ $rc -eq 1 ]; then ok; else bad "--device cuda without its library: exit $rc, want 1"; fi
if [ "$(wc -l <"$T/cuda2.txt")" -eq 1 ]; then ok; else bad "want one line"; cat "$T/cuda2.txt"; fi
has "names the library" "$T/cuda2.txt" "cannot load the CUDA backend.*libferry-cuda.so"
has "says what to do" "$T/cuda2.txt" "use --device cpu"
if [ -e "$T/cuda2.mp4" ]; then bad "an output after the failure"; else ok; fi
finish
