#!/usr/bin/env bash
# The chaos run (examples/chaos) per backend, one after the other: worker
# processes take locks, a semaphore and a fair lock while they are paused
# and killed, their connections stalled, cut and slowed, and the database
# killed and restarted; then the history of every critical section is
# checked. Not part of CI (scripts/test.sh runs a 30 s version).
#
#   scripts/chaos.sh                          # 10 min each: sqlite, mongo, postgres
#   scripts/chaos.sh --minutes 2 sqlite mongo
#   scripts/chaos.sh --workers 8 --seed 42 postgres
#
# Options before the backends go to the chaos binary (--minutes, --workers,
# --seed, --keep). Installs what scripts/test.sh installs (SecantusDB into
# its cached virtualenv, PostgreSQL binaries with apt-get where missing);
# each run starts, kills and restarts a server of its own. Prints each
# run's summary line; exits 1 if any run found a violation or failed.
set -euo pipefail
# The server helpers of scripts/test.sh (it stops after defining them).
# shellcheck source=scripts/test.sh
source "$(dirname "$0")/test.sh"

options=()
backends=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes|--workers|--seed) options+=("$1" "$2"); shift 2 ;;
        --keep) options+=("$1"); shift ;;
        sqlite|mongo|postgres) backends+=("$1"); shift ;;
        *) echo "usage: scripts/chaos.sh [--minutes F] [--workers N] [--seed N] [--keep] [sqlite] [mongo] [postgres]" >&2; exit 2 ;;
    esac
done
[ ${#backends[@]} -gt 0 ] || backends=(sqlite mongo postgres)

for backend in "${backends[@]}"; do
    case "$backend" in
        mongo)
            [ -n "${SECANTUSD:-}" ] || install_secantus || { echo "error: could not install SecantusDB" >&2; exit 2; }
            ;;
        postgres)
            if ! find_postgres; then
                echo "== installing PostgreSQL (apt-get install -y postgresql)"
                { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || exit 2
                find_postgres || exit 2
            fi
            # initdb refuses root: the cluster then runs as postgres (or nobody).
            if [ "$(id -u)" = 0 ] && [ -z "${SHYLOCK_PG_RUN_AS:-}" ]; then
                if id -u postgres >/dev/null 2>&1; then pg_user=postgres; else pg_user=nobody; fi
                export SHYLOCK_PG_RUN_AS="runuser -u $pg_user --"
            fi
            ;;
    esac
done

cargo build --release --quiet --example chaos --features mongo,postgres
failed=()
summaries=()
for backend in "${backends[@]}"; do
    echo "== chaos run on $backend"
    status=0
    log=$(mktemp)
    cargo run --release --quiet --example chaos --features mongo,postgres -- \
        --backend "$backend" "${options[@]}" | tee "$log" || status=$?
    summaries+=("$(tail -1 "$log")")
    rm -f "$log"
    [ "$status" = 0 ] || failed+=("$backend (exit $status)")
done
echo "== summary"
printf '%s\n' "${summaries[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "error: chaos runs failed: ${failed[*]}" >&2
    exit 1
fi
