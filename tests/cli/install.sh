#!/usr/bin/env bash
# cmake --install puts ferry, libferry.so, the headers and the Python module
# in place, and the module finds the library where it went (no FERRY_LIBRARY).
# usage: bash install.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
MODEL=$2/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" install
BUILD=$(dirname "$FERRY")
if [ ! -e "$BUILD/cmake_install.cmake" ] || ! ls "$BUILD"/libferry.so* >/dev/null 2>&1; then
    echo "install: $BUILD has no install script or no libferry.so (build the default target first)"
    exit 1
fi
cmake --install "$BUILD" --prefix "$T/prefix" >"$T/install.log" 2>&1 || { bad "cmake --install"; cat "$T/install.log"; }
P=$T/prefix
for f in bin/ferry include/ferry/wan_t2v.h include/ferry/version.h include/ferry/options.h; do
    if [ -e "$P/$f" ]; then ok; else bad "no $f after install"; fi
done
lib=$(ls "$P"/lib*/libferry.so 2>/dev/null | head -1)
if [ -n "$lib" ]; then ok; else bad "no libferry.so after install"; ls -R "$P"; fi
"$P/bin/ferry" --version >"$T/v.txt" && has "installed ferry runs" "$T/v.txt" "^ferry "
module=$(dirname "$(ls -d "$P"/lib*/python3/dist-packages/ferry)")
if ldd "$lib" | grep -q "libasan\|libubsan"; then
    # An ASan library cannot be loaded into an uninstrumented python3.
    echo "install: sanitizer build, the Python import check skipped"
elif PYTHONPATH=$module PYTHONDONTWRITEBYTECODE=1 FERRY_LIBRARY= python3 - "$lib" "$MODEL" "$T/py.png" <<'PY'; then ok; else bad "the installed module"; fi
import os, sys
import ferry
assert os.path.realpath(ferry.library_path()) == os.path.realpath(sys.argv[1]), ferry.library_path()
gen = ferry.VideoGenerator.from_pretrained(sys.argv[2])
out = gen.generate_video("a fox", height=16, width=16, num_frames=1, num_inference_steps=1,
                         max_sequence_length=16, output_path=sys.argv[3])
assert os.path.getsize(sys.argv[3]) > 0 and len(out["frames"]) == 1
PY
finish
