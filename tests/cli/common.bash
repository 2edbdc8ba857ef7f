# What every CLI test script shares (sourced, not run: ctest runs *.sh).
#   source "$(dirname "$0")/common.bash" NAME
# gives T, a temp folder removed on exit, and the pass/fail counters with
# ok, bad, has and finish.
T=$(mktemp -d "${TMPDIR:-/tmp}/ferry-cli-$1-XXXXXX")
trap 'rm -rf "$T"' EXIT
CLI_TEST=$1
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}
has() { # name, file, pattern
    if grep -q -- "$3" "$2"; then ok; else bad "$1: no \"$3\" in output"; cat "$2"; fi
}
finish() {
    echo "$CLI_TEST: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
