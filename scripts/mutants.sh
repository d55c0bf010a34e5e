#!/usr/bin/env bash
# Mutation testing of the shapes and the engine of shylock-core: every
# mutant that the tests do not catch is a behaviour nothing checks.
# Takes hours on 2 cores (about 25 s per mutant with cargo-nextest and two
# jobs); not part of CI.
#
#   scripts/mutants.sh            # the files below
#   scripts/mutants.sh -- ARGS    # extra arguments for cargo mutants
#
# Prints the counts and the score: caught / (caught + missed + timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi
extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi
out="${TMPDIR:-/tmp}/shylock-mutants"
status=0
files=()
for f in lock guard renewal attempt ticket semaphore fair_permits multi reentrant rwlock \
         wait lease line 'election/*'; do
    files+=(--file "shylock-core/src/$f.rs")
done
# With cargo-nextest, each mutant's tests run in parallel (about 25 s
# instead of 70 s here); two mutants are built and tested at a time
# (SHYLOCK_MUTANTS_JOBS), as most of a test run waits on timers.
# Its `mutants` profile (.config/nextest.toml) fails a test that hangs
# after two minutes.
tool=()
if cargo nextest --version >/dev/null 2>&1; then
    tool=(--test-tool nextest)
    export NEXTEST_PROFILE=mutants
fi
# With the metrics feature, so the metrics test (time held recorded once,
# leases lost counted) runs against the mutants too.
cargo mutants --package shylock-core --features metrics "${files[@]}" \
    "${tool[@]}" --jobs "${SHYLOCK_MUTANTS_JOBS:-2}" \
    --output "$out" "${extra[@]}" || status=$?
for kind in caught missed timeout unviable; do
    file="$out/mutants.out/$kind.txt"
    printf '%-9s %s\n' "$kind" "$( [ -f "$file" ] && wc -l <"$file" || echo 0)"
done
count() { [ -f "$out/mutants.out/$1.txt" ] && wc -l <"$out/mutants.out/$1.txt" || echo 0; }
# Mutants that change nothing a caller can observe, each with the reason,
# in scripts/mutants-equivalent.txt ("file:line:col: mutation  # why").
# A missed mutant listed there is reported apart and left out of the score.
listed="scripts/mutants-equivalent.txt"
patterns() { grep -v -e '^#' -e '^$' "$listed" | sed 's/  #.*//'; }
equivalent=0
missed_file="$out/mutants.out/missed.txt"
if [ -s "$missed_file" ] && [ -f "$listed" ]; then
    equivalent=$(patterns | grep -Fxc -f - "$missed_file" || true)
fi
caught=$(count caught); viable=$((caught + $(count missed) + $(count timeout) - equivalent))
if [ "$viable" -gt 0 ]; then
    echo "score     $((100 * caught / viable)) % of $viable viable mutants caught ($equivalent equivalent left out)"
fi
if [ -s "$missed_file" ]; then
    if [ "$equivalent" -gt 0 ]; then
        echo "missed, equivalent (reasons in $listed):"
        patterns | grep -Fx -f - "$missed_file" || true
    fi
    echo "missed mutants:"
    if [ -f "$listed" ]; then
        patterns | grep -Fvx -f - "$missed_file" || true
    else
        cat "$missed_file"
    fi
fi
exit "$status"
