#!/usr/bin/env bash
# One budget: --max-memory 0=SIZE alone lets the planner pick the fastest plan
# that fits, as --vram-budget SIZE does (kept as an alias); --offload still
# forces a plan; an impossible budget names the flag the user gave; the host
# budget defaults to MemAvailable less a margin; the token embeddings stay on
# the host; the planner moves components to the host when the budget needs it.
# usage: bash budget.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" budget
SIZES=(--height 64 --width 64 --num-frames 5 --max-sequence-length 16)

"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --max-memory 0=3MiB >"$T/mm.txt" 2>"$T/mm.err"
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "--max-memory alone: exit $rc"; cat "$T/mm.err"; fi
has "planner chose" "$T/mm.txt" "(chosen by the planner)"
has "planner names --max-memory" "$T/mm.txt" "planner      --max-memory 3.00 MiB"
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --vram-budget 3MiB >"$T/vb.txt" 2>&1 || bad "--vram-budget"
plan_line() { grep "^  plan " "$1"; }
if [ "$(plan_line "$T/mm.txt")" = "$(plan_line "$T/vb.txt")" ]; then ok; else
    bad "--max-memory and --vram-budget chose differently: $(plan_line "$T/mm.txt") / $(plan_line "$T/vb.txt")"
fi
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --max-memory 0=3MiB --offload sequential >"$T/fx.txt" 2>&1 ||
    bad "--max-memory with --offload"
has "--offload forces its plan" "$T/fx.txt" "plan         sequential"
if ! grep -q "chosen by the planner" "$T/fx.txt"; then ok; else bad "--offload was overridden by the planner"; fi

"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --max-memory 0=64KiB >/dev/null 2>"$T/small.err"
rc=$?
if [ $rc -eq 1 ] && grep -q -- "--max-memory 0=64.00 KiB: no plan fits" "$T/small.err"; then ok; else
    bad "impossible --max-memory: exit $rc"
    cat "$T/small.err"
fi
"$FERRY" generate --model "$MODEL" "${SIZES[@]}" --prompt fox --steps 2 --device emu --max-memory 0=3MiB \
    --output "$T/g.png" >"$T/g.txt" 2>&1
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/g_0000.png" ]; then ok; else bad "generate with --max-memory alone: exit $rc"; tail -3 "$T/g.txt"; fi

# The host budget defaults to MemAvailable less a margin (here a fake
# meminfo with 1 GiB + 400 KiB available): blocks beyond it go to disk.
printf 'MemTotal: 2000000 kB\nMemAvailable: 1049000 kB\n' >"$T/meminfo"
FERRY_MEMINFO=$T/meminfo "$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload layerwise >"$T/host.txt" 2>&1 ||
    bad "plan under the default host budget"
has "default host budget" "$T/host.txt" "host budget  424.00 KiB (MemAvailable less a margin; --max-memory cpu= sets it)"
has "blocks on disk" "$T/host.txt" "  disk$"
FERRY_MEMINFO=$T/meminfo "$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload layerwise \
    --max-memory cpu=10GiB >"$T/host2.txt" 2>&1 || bad "plan with --max-memory cpu="
has "--max-memory cpu= overrides" "$T/host2.txt" "host budget  10.00 GiB (--max-memory cpu)"

# A budget no plan fits names the components' host offloads that would, with figures.
"$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --offload sequential --max-memory 0=1MiB >/dev/null 2>"$T/hint.err"
rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$T/hint.err")" -eq 1 ] &&
    grep -q "these would fit: --vae-cpu-offload (device bound [0-9.]* KiB)" "$T/hint.err"; then ok; else
    bad "impossible budget without offload hints: exit $rc"
    cat "$T/hint.err"
fi

# A budget that fits no plan with every component on the device: the planner
# moves the cheapest components to the host itself and says so; when even all
# of them on the host do not fit, the error gives what the smallest plan needs.
while IFS='|' read -r budget want_rc want_line want_engine; do
    "$FERRY" plan --model "$MODEL" "${SIZES[@]}" --device emu --max-memory "0=$budget" >"$T/mv.txt" 2>"$T/mv.err"
    rc=$?
    if [ $rc -eq "$want_rc" ] && grep -q -- "$want_line" "$T/mv.err" &&
        { [ -z "$want_engine" ] || grep -q -- "$want_engine" "$T/mv.txt"; }; then ok; else
        bad "--max-memory 0=$budget: exit $rc (want $want_rc), want \"$want_line\" and \"$want_engine\""
        cat "$T/mv.err"
    fi
done <<'CASES'
1MiB|0|running as with --vae-cpu-offload (the planner's choice), device bound|engine: host holds vae on cpu
64KiB|1|with --text-encoder-cpu-offload --vae-cpu-offload as well the smallest plan needs [0-9.]* KiB|
CASES
"$FERRY" generate --model "$MODEL" "${SIZES[@]}" --prompt fox --steps 2 --device emu --max-memory 0=1MiB \
    --output "$T/mv.png" >"$T/mv.txt" 2>&1
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/mv_0000.png" ]; then ok; else bad "generate with the VAE moved: exit $rc"; tail -3 "$T/mv.txt"; fi

# The text encoder's token embeddings stay in host memory: not a device group.
if ! grep -q "text_encoder *embed_tokens" "$T/mm.txt"; then ok; else bad "the embedding table is on the device"; fi
finish
