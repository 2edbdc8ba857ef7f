#!/usr/bin/env bash
# The repository's copy of the golden fixtures is intact: every file listed in
# SHA256SUMS has its checksum and nothing unlisted sits beside them (refresh
# with scripts/sync-fixtures, never by hand). When ../shared/fixtures is there
# and differs, a note says to sync (new families arrive there over time).
# usage: bash fixtures.sh FERRY_BINARY FIXTURES_DIR
set -u
FIXTURES=$2
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash" fixtures

if [ -f "$FIXTURES/SHA256SUMS" ]; then ok; else bad "$FIXTURES/SHA256SUMS missing: run scripts/sync-fixtures"; fi
if (cd "$FIXTURES" && sha256sum --quiet -c SHA256SUMS) >"$T/sum.txt" 2>&1; then ok; else
    bad "fixtures differ from SHA256SUMS: $(head -3 "$T/sum.txt")"
fi
(cd "$FIXTURES" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort) >"$T/have.txt"
awk '{print $2}' "$FIXTURES/SHA256SUMS" | LC_ALL=C sort >"$T/listed.txt"
if cmp -s "$T/have.txt" "$T/listed.txt"; then ok; else
    bad "files not in SHA256SUMS: $(comm -23 "$T/have.txt" "$T/listed.txt" | head -3 | tr '\n' ' ')"
fi
shared=$(dirname "$0")/../../../shared/fixtures
if [ -f "$shared/README.md" ] && ! diff -rq -x SHA256SUMS "$shared" "$FIXTURES" >/dev/null 2>&1; then
    echo "note: $shared differs from $FIXTURES: run scripts/sync-fixtures"
fi
finish
