#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. release build (gcc, CUDA backend compiled when nvcc exists) + ctest
#   2. ASan + UBSan build + ctest
#   3. clang build with -Werror (compile check)
#   4. the fuzzers (fuzz/: safetensors header, GGUF file, configs, model_index.json, the
#      sharded index, the tokenizer model, the model folder), each for a bounded time
# Usage: scripts/test.sh [--quick]   (--quick: step 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
quick=0
[ "${1:-}" = "--quick" ] && quick=1

step() { printf '\n==== %s ====\n' "$*"; }

step "release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
# ctest's own count, kept for the closing summary line.
run_ctest() {
  local log
  log=$(mktemp)
  ctest --test-dir "$1" --output-on-failure -j"$jobs" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  total=$(( total + $(sed -n 's/.*tests passed, [0-9]* tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1) ))
  rm -f "$log"
  return "$rc"
}
total=0

step "tests (release)"
run_ctest build
if [ $quick -eq 1 ]; then echo "tests: $total passed, 0 failed"; exit 0; fi

step "sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON -DFERRY_CUDA=OFF -DFERRY_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
step "tests (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_ctest build-asan

step "clang build (-Werror)"
CC=clang CXX=clang++ cmake -S . -B build-clang -DFERRY_CUDA=OFF -DFERRY_TESTS=ON >/dev/null
cmake --build build-clang -j"$jobs"

step "fuzz the parsers and the model-folder loader (bounded)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DFERRY_FUZZ=ON -DFERRY_CUDA=OFF -DFERRY_TESTS=OFF -DFERRY_BENCH=OFF >/dev/null
fuzzers="fuzz_safetensors_header fuzz_gguf fuzz_config fuzz_model_index fuzz_st_index fuzz_tokenizer fuzz_model_dir"
# shellcheck disable=SC2086
cmake --build build-fuzz -j"$jobs" --target $fuzzers
rm -rf build-fuzz/seeds
scripts/fuzz-seeds build-fuzz/seeds tests/fixtures
mkdir -p build-fuzz/seeds/fuzz_safetensors_header
cp fuzz/corpus/safetensors/* build-fuzz/seeds/fuzz_safetensors_header/
mkdir -p build-fuzz/seeds/fuzz_gguf
cp fuzz/corpus/gguf/* build-fuzz/seeds/fuzz_gguf/
# Each fuzzer for FERRY_FUZZ_SECONDS (default 25: about 2.5 minutes in all);
# new inputs it finds are kept in build-fuzz/corpus for the next run.
for f in $fuzzers; do
  mkdir -p "build-fuzz/corpus/$f"
  FERRY_FUZZ_MODEL=tests/fixtures/wan-tiny/model FERRY_FUZZ_SHARDS=tests/fixtures/flux-tiny/model/transformer \
    ./build-fuzz/"$f" -max_total_time="${FERRY_FUZZ_SECONDS:-25}" -rss_limit_mb=2048 -timeout=30 \
    "build-fuzz/corpus/$f" "build-fuzz/seeds/$f"
  echo "fuzz: $f: no crash in ${FERRY_FUZZ_SECONDS:-25} s"
done

echo "tests: $total passed, 0 failed"
