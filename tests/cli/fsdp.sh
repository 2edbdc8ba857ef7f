#!/usr/bin/env bash
# FSDP inference under mpirun on one machine (CPU ranks, oversubscribed):
# the collectives across 2 and 3 ranks, `ferry verify` on the golden model,
# videos bit-identical to the single-process run (Wan2.1, and Wan2.2 TI2V's
# image to video), each rank holding about
# 1/N of the block weights, and a dead or stuck rank turning into a clear
# error on the others within --collective-timeout instead of a hang.
# Skipped (exit 0, with a message) where mpirun or the MPI build is missing.
# usage: bash fsdp.sh FERRY_BINARY FIXTURES_DIR
set -u
FERRY=$1
FIXTURES=$2
MODEL=$FIXTURES/wan-tiny/model
FIX=$FIXTURES/wan-tiny/fixtures
CHECK=$(dirname "$FERRY")/ferry_collectives_check
if ! command -v mpirun >/dev/null 2>&1; then
    echo "fsdp.sh: skipped: no mpirun (apt-get install openmpi-bin libopenmpi-dev)"
    exit 0
fi
if [ ! -x "$CHECK" ] || ! grep -q "ompi_mpi_init\|MPI_Init" "$FERRY" "$(dirname "$FERRY")/libferry-cli.so" 2>/dev/null; then
    echo "fsdp.sh: skipped: this build has no MPI"
    exit 0
fi
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" fsdp

# CI runs as root in a container, with no network: shared memory only, quiet.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_btl=self,vader OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
# OpenMPI (and hwloc in it) leave allocations behind at exit, some in
# components already unloaded: under the sanitizer build, no leak check here
# (test_collectives checks the engine's fsdp path for leaks in one process).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
mpi() { # NP, command... (never more than 120 s)
    local np=$1
    shift
    timeout 120 mpirun --oversubscribe --bind-to none -np "$np" "$@"
}

# ---- The collectives ---------------------------------------------------------
for np in 2 3; do
    mpi "$np" "$CHECK" >"$T/coll.out" 2>"$T/coll.err"
    rc=$?
    n=$(grep -c ": ok$" "$T/coll.out")
    if [ $rc -eq 0 ] && [ "$n" -eq "$np" ]; then ok; else
        bad "collectives on $np ranks: exit $rc, $n ranks ok"
        cat "$T/coll.out" "$T/coll.err"
    fi
done
# A rank exits at once: the others' barrier fails within its 2 s deadline.
# (mpirun would otherwise end the job itself as soon as one rank exits.)
start=$SECONDS
mpi 3 --mca orte_abort_on_non_zero_status 0 "$CHECK" dead >"$T/dead.out" 2>"$T/dead.err"
rc=$?
n=$(grep -c "expected failure: .*did not answer" "$T/dead.err")
if [ $rc -ne 124 ] && [ "$n" -eq 2 ] && [ $((SECONDS - start)) -lt 60 ]; then ok; else
    bad "collectives with a dead rank: exit $rc, $n ranks saw the timeout"
    cat "$T/dead.err"
fi

# ---- Verify on the golden model ------------------------------------------------
for np in 2 3; do
    mpi "$np" "$FERRY" verify "$MODEL" "$FIX" --component transformer,pipeline --use-fsdp-inference \
        >"$T/verify.out" 2>"$T/verify.err"
    rc=$?
    if [ $rc -eq 0 ] && grep -q " passed, 0 failed" "$T/verify.out" && [ "$(grep -c ' passed, ' "$T/verify.out")" -eq 1 ]; then
        ok
    else
        bad "verify on $np ranks: exit $rc"
        tail -5 "$T/verify.out"
        cat "$T/verify.err"
    fi
done
mpi 2 "$FERRY" verify "$MODEL" "$FIX" --component transformer --use-fsdp-inference --device emu \
    --dit-cpu-offload --prefetch-depth 2 >"$T/verify.out" 2>"$T/verify.err"
rc=$?
if [ $rc -eq 0 ] && grep -q " passed, 0 failed" "$T/verify.out"; then ok; else
    bad "verify on 2 ranks, emu, --dit-cpu-offload: exit $rc"
    cat "$T/verify.err"
fi

# ---- Generate: the same video as one process ----------------------------------
GEN=(generate --model "$MODEL" --prompt "a red fox in the snow" --height 64 --width 64 --num-frames 5 --steps 3
    --max-sequence-length 16)
"$FERRY" "${GEN[@]}" --output "$T/ref.png" 2>"$T/ref.err" || bad "the single-process run failed: $(cat "$T/ref.err")"
same_frames() { # name, prefix
    local f diff=0
    for f in "$T"/ref_*.png; do
        cmp -s "$f" "$T/$2_${f##*_}" || diff=1
    done
    if [ $diff -eq 0 ] && ls "$T"/ref_*.png >/dev/null 2>&1; then ok; else bad "$1: the frames differ from one process's"; fi
}
# per_rank NAME NP ERRFILE: each rank's block bytes within 2% of 1/NP of the whole.
per_rank() {
    local line
    line=$(grep "^ranks .*block weights held per rank" "$3")
    if [ -z "$line" ]; then
        bad "$1: no per-rank report"
        return
    fi
    if echo "$line" | awk -v np="$2" '{
            match($0, /of [0-9.]+ KiB/); total = substr($0, RSTART + 3, RLENGTH - 7) + 0
            s = $0; sub(/.*\): /, "", s); sub(/;.*/, "", s); n = split(s, v, " KiB")
            k = 0; okay = 1
            for (i = 1; i <= n; i++) { x = v[i] + 0; if (v[i] ~ /[0-9]/) { k++; if (x > total / np * 1.02 || x < total / np * 0.98) okay = 0 } }
            exit !(okay && k == np) }'; then ok; else bad "$1: shares not ~1/$2: $line"; fi
}
for np in 2 3; do
    mpi "$np" "$FERRY" "${GEN[@]}" --use-fsdp-inference --output "$T/cpu$np.png" >"$T/gen.out" 2>"$T/gen.err"
    rc=$?
    if [ $rc -eq 0 ]; then ok; else bad "generate on $np ranks: exit $rc"; cat "$T/gen.err"; fi
    same_frames "generate on $np ranks" "cpu$np"
    per_rank "generate on $np ranks" "$np" "$T/gen.err"
    if [ "$(grep -c "^denoising:.*done" "$T/gen.err")" -le 1 ] && [ "$(grep -c "wrote" "$T/gen.err")" -le 1 ]; then ok; else
        bad "generate on $np ranks: ranks other than 0 printed progress or wrote output"
    fi
done
mpi 2 "$FERRY" "${GEN[@]}" --use-fsdp-inference --device emu --dit-cpu-offload --prefetch-depth 2 \
    --output "$T/emu2.png" >"$T/gen.out" 2>"$T/gen.err"
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "generate on 2 ranks, emu: exit $rc"; cat "$T/gen.err"; fi
same_frames "generate on 2 ranks, emu, --dit-cpu-offload" emu2
per_rank "generate on 2 ranks, emu" 2 "$T/gen.err"

# Wan2.2 TI2V's image to video (per-token timesteps, the image's VAE encode): the same frames.
TI2V=(generate --model "$FIXTURES/wan22-ti2v-tiny/model" --image "$FIXTURES/wan-i2v-tiny/fixtures/image_other.png"
    --prompt "a red fox" --height 64 --width 64 --num-frames 5 --steps 2 --max-sequence-length 16)
"$FERRY" "${TI2V[@]}" --output "$T/iref.png" 2>"$T/ref.err" || bad "ti2v image, one process: $(cat "$T/ref.err")"
mpi 2 "$FERRY" "${TI2V[@]}" --use-fsdp-inference --output "$T/ifsdp.png" >"$T/gen.out" 2>"$T/gen.err" ||
    bad "ti2v image on 2 ranks: $(cat "$T/gen.err")"
diff=0
for f in "$T"/iref_*.png; do cmp -s "$f" "$T/ifsdp_${f##*_}" || diff=1; done
if [ $diff -eq 0 ] && ls "$T"/iref_*.png >/dev/null 2>&1; then ok; else bad "ti2v image on 2 ranks: other frames"; fi

# ---- A rank dies or hangs mid-run ------------------------------------------------
# dead NAME SPEC [mpirun flags]: rank 0 exits non-zero with one clear line, in time.
dead() {
    local name=$1 spec=$2
    shift 2
    local start=$SECONDS
    # The wrapper reports each rank's own exit status (mpirun's depends on its flags).
    FERRY_TEST_RANK_EXIT=$spec mpi 2 -x FERRY_TEST_RANK_EXIT "$@" bash -c \
        '"$@"; rc=$?; echo "rank $OMPI_COMM_WORLD_RANK exit $rc" >&2; exit $rc' _ "$FERRY" "${GEN[@]}" \
        --use-fsdp-inference --collective-timeout 3 --output "$T/dead.png" >"$T/dead.out" 2>"$T/dead.err"
    local rc=$?
    if [ $rc -ne 124 ] && [ $((SECONDS - start)) -lt 60 ] && grep -q "^rank 0 exit 1$" "$T/dead.err" &&
        grep -q "^ferry: error: \[rank 0\] .*did not answer.*a rank died" "$T/dead.err" && ! ls "$T"/dead*.png >/dev/null 2>&1; then
        ok
    else
        bad "$name: exit $rc after $((SECONDS - start)) s"
        cat "$T/dead.err"
    fi
}
dead "rank 1 hangs at step 2" "1:step2:hang"
dead "rank 1 exits at step 2" "1:step2" --mca orte_abort_on_non_zero_status 0

# ---- Flags ------------------------------------------------------------------------
"$FERRY" "${GEN[@]}" --dit-cpu-offload --output "$T/x.png" >/dev/null 2>"$T/flag.err"
rc=$?
if [ $rc -eq 2 ] && grep -q "needs --use-fsdp-inference" "$T/flag.err"; then ok; else bad "--dit-cpu-offload alone: exit $rc"; fi
"$FERRY" "${GEN[@]}" --use-fsdp-inference --offload layerwise --output "$T/x.png" >/dev/null 2>"$T/flag.err"
rc=$?
if [ $rc -eq 2 ] && grep -q "drop --offload" "$T/flag.err"; then ok; else bad "--use-fsdp-inference with --offload: exit $rc"; fi
"$FERRY" "${GEN[@]}" --use-fsdp-inference --collective-timeout 0 --output "$T/x.png" >/dev/null 2>"$T/flag.err"
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--collective-timeout" "$T/flag.err"; then ok; else bad "--collective-timeout 0: exit $rc"; fi

finish
