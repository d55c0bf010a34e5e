#!/usr/bin/env bash
# Mutation testing of the lock and guard logic of shylock-core: every
# mutant that the tests do not catch is a behaviour nothing checks.
# Takes about half an hour on 2 cores; not part of CI.
#
#   scripts/mutants.sh            # lock.rs, guard.rs, renewal.rs, attempt.rs
#   scripts/mutants.sh -- ARGS    # extra arguments for cargo mutants
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi
extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi
out="${TMPDIR:-/tmp}/shylock-mutants"
status=0
cargo mutants --package shylock-core \
    --file shylock-core/src/lock.rs --file shylock-core/src/guard.rs \
    --file shylock-core/src/renewal.rs --file shylock-core/src/attempt.rs \
    --output "$out" "${extra[@]}" || status=$?
for kind in caught missed timeout unviable; do
    file="$out/mutants.out/$kind.txt"
    printf '%-9s %s\n' "$kind" "$( [ -f "$file" ] && wc -l <"$file" || echo 0)"
done
if [ -s "$out/mutants.out/missed.txt" ]; then
    echo "missed mutants:"
    cat "$out/mutants.out/missed.txt"
fi
exit "$status"
