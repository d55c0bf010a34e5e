#!/usr/bin/env bash
# Runs every test of the workspace.
#
# Starts the test servers it can: a MongoDB wire-protocol server
# (SecantusDB, from PyPI, installed once into a cached virtualenv) on a free
# loopback port, exported as MONGODB_URI for the MongoDB suites. If
# MONGODB_URI is already set, that server is used instead; with neither and
# a reachable Docker engine, `docker compose` starts MongoDB and ArangoDB.
#
# PostgreSQL: a throwaway cluster (initdb in a temp dir, pg_ctl on a free
# loopback port, removed at exit), exported as POSTGRES_URL; the binaries
# are installed with apt-get where missing. With pgbouncer installed (or
# installable), the conformance suite also runs through PgBouncer in
# transaction mode (POSTGRES_POOLER_URL).
#
# Suites that need a server are `#[ignore = "needs ..."]`: the first cargo
# run reports them as ignored, and this script runs them with `--ignored`
# for each server that is there. Prints which suites ran and which were
# skipped, and why.
#
#   scripts/test.sh              # all tests
#   scripts/test.sh -- NAME      # extra arguments go to `cargo test`
#
# Environment:
#   SHYLOCK_TEST_CACHE   where the server's virtualenv is kept
#                        (default: ~/.cache/shylock)
#   SHYLOCK_NO_SERVERS=1 start no server (the server suites then skip)
#   SHYLOCK_PYTHON       a Python with shylock==1.2.1 and pymongo for the
#                        Python interop test (set here when installed)
#   SECANTUSD            path of secantusd-py for the fault-injection suite
#                        (set here when SecantusDB is installed)
#   POSTGRES_URL         a PostgreSQL server to use instead of a throwaway
#                        cluster (the restart tests then skip)
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${SHYLOCK_TEST_CACHE:-$HOME/.cache/shylock}"
secantus_version="0.7.0b3"
server_pid=""
pg_dir=""
pg_run=()
bouncer_pid=""
cleanup() {
    if [ -n "$bouncer_pid" ]; then
        kill "$bouncer_pid" 2>/dev/null || true
        wait "$bouncer_pid" 2>/dev/null || true
    fi
    if [ -n "$pg_dir" ]; then
        "${pg_run[@]}" "$SHYLOCK_PG_BIN/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
    if [ -n "${compose_started:-}" ]; then
        docker compose down >/dev/null 2>&1 || true
    fi
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {
    python3 - "$1" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
deadline = time.time() + 60
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PY
}

# Installs SecantusDB once into a cached virtualenv and exports its path as
# SECANTUSD (the fault-injection suite starts, kills and restarts its own).
install_secantus() {
    local venv="$cache/venv-secantusdb-$secantus_version"
    if [ ! -x "$venv/bin/secantusd-py" ]; then
        echo "== installing SecantusDB $secantus_version (MongoDB wire-protocol test server) into $venv"
        rm -rf "$venv"
        mkdir -p "$cache"
        if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q --pre "secantusdb==$secantus_version"; }; then
            rm -rf "$venv"
            return 1
        fi
    fi
    export SECANTUSD="$venv/bin/secantusd-py"
}

# Python shylock 1.2.1 with pymongo in the same cached virtualenv, for the
# test where Python and Rust processes contend for the same locks
# (exported as SHYLOCK_PYTHON).
python_shylock_version="1.2.1"
install_python_shylock() {
    local venv="$cache/venv-secantusdb-$secantus_version"
    [ -x "$venv/bin/python" ] || return 1
    if ! "$venv/bin/python" -c "import shylock, pymongo, importlib.metadata as m; assert m.version('shylock') == '$python_shylock_version'" 2>/dev/null; then
        echo "== installing Python shylock $python_shylock_version and pymongo into $venv"
        "$venv/bin/pip" install -q "shylock==$python_shylock_version" pymongo || return 1
    fi
    export SHYLOCK_PYTHON="$venv/bin/python"
}

start_mongo() {
    install_secantus || return 1
    local venv="$cache/venv-secantusdb-$secantus_version"
    local port
    port=$(free_port)
    local log="$cache/secantusdb-$port.log"
    "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path :memory: --enable-test-commands >"$log" 2>&1 &
    server_pid=$!
    if ! wait_for_port "$port"; then
        echo "SecantusDB did not start; its log ($log):"
        tail -20 "$log" || true
        return 1
    fi
    export MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true"
    echo "== MongoDB suites: SecantusDB $secantus_version at $MONGODB_URI (fault injection on)"
}

# The directory of initdb and pg_ctl: on PATH, or where Debian keeps them.
find_postgres() {
    local dir
    for dir in "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")" /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            export SHYLOCK_PG_BIN="$dir"
            return 0
        fi
    done
    return 1
}

# A throwaway cluster: initdb in a temp dir, pg_ctl on a free loopback port.
# initdb refuses to run as root, so as root the server runs as the postgres
# user (or nobody). Exports POSTGRES_URL, and SHYLOCK_PG_DATA for the tests
# that stop and restart the server.
start_postgres() {
    if ! find_postgres; then
        echo "== installing PostgreSQL (apt-get install -y postgresql)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || return 1
        find_postgres || return 1
    fi
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/shylock-pg.XXXXXX")
    if [ "$(id -u)" = 0 ]; then
        local user=postgres
        id -u "$user" >/dev/null 2>&1 || user=nobody
        chown "$user" "$pg_dir"
        pg_run=(runuser -u "$user" --)
    fi
    local port
    port=$(free_port)
    if ! "${pg_run[@]}" "$SHYLOCK_PG_BIN/initdb" -D "$pg_dir/data" -A trust -U postgres >"$pg_dir/initdb.log" 2>&1; then
        echo "initdb failed:"; tail -20 "$pg_dir/initdb.log"
        return 1
    fi
    # The options the restart tests reuse when they start it again.
    export SHYLOCK_PG_OPTIONS="-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300"
    if ! "${pg_run[@]}" "$SHYLOCK_PG_BIN/pg_ctl" -D "$pg_dir/data" -o "$SHYLOCK_PG_OPTIONS" -l "$pg_dir/server.log" -w start >/dev/null; then
        echo "PostgreSQL did not start; its log:"; tail -20 "$pg_dir/server.log" || true
        return 1
    fi
    export SHYLOCK_PG_DATA="$pg_dir/data"
    export SHYLOCK_PG_RUN_AS="${pg_run[*]}"
    export POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "== PostgreSQL suites: $("$SHYLOCK_PG_BIN/postgres" --version) at $POSTGRES_URL (throwaway cluster in $pg_dir)"
}

# PgBouncer in transaction mode in front of the throwaway cluster, where
# pgbouncer is installed or installable. Exports POSTGRES_POOLER_URL.
start_pgbouncer() {
    if ! command -v pgbouncer >/dev/null 2>&1; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; } 2>/dev/null || return 1
    fi
    local port pg_port
    port=$(free_port)
    pg_port=${POSTGRES_URL##*:}; pg_port=${pg_port%%/*}
    cat >"$pg_dir/pgbouncer.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$pg_port dbname=postgres user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $pg_dir/userlist.txt
pool_mode = transaction
# sqlx sends extra_float_digits at startup, which PgBouncer refuses unless told to ignore it.
ignore_startup_parameters = extra_float_digits
max_client_conn = 500
default_pool_size = 20
logfile = $pg_dir/pgbouncer.log
INI
    echo '"postgres" ""' >"$pg_dir/userlist.txt"
    "${pg_run[@]}" pgbouncer "$pg_dir/pgbouncer.ini" >/dev/null 2>&1 &
    bouncer_pid=$!
    wait_for_port "$port" || return 1
    export POSTGRES_POOLER_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "== PgBouncer $(pgbouncer --version | head -1 | awk '{print $2}') in transaction mode at $POSTGRES_POOLER_URL"
}

compose_started=""
start_compose() {
    # Real servers in containers, for contributors with Docker.
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || return 1
    echo "== starting MongoDB, ArangoDB and PostgreSQL with docker compose"
    docker compose up -d --wait mongo arangodb postgres || return 1
    compose_started=1
    export MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true"
    export ARANGO_URL="http://127.0.0.1:8529" ARANGO_PASSWORD="${ARANGO_PASSWORD:-shylock}"
    export POSTGRES_URL="postgres://postgres:shylock@127.0.0.1:5432/postgres"
}

# scripts/chaos.sh sources this file for the functions above and stops here.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    return 0
fi

if [ -z "${MONGODB_URI:-}" ] && [ -z "${ARANGO_URL:-}" ] && [ "${SHYLOCK_NO_SERVERS:-}" != "1" ]; then
    start_compose || echo "== no Docker engine reachable: real servers come from SecantusDB only"
fi

if [ -n "${MONGODB_URI:-}" ]; then
    echo "== MongoDB suites: using MONGODB_URI ($MONGODB_URI)"
    [ "${SHYLOCK_NO_SERVERS:-}" = "1" ] || [ -n "${SECANTUSD:-}" ] || install_secantus || true
elif [ "${SHYLOCK_NO_SERVERS:-}" = "1" ]; then
    echo "== MongoDB suites: SKIPPED (SHYLOCK_NO_SERVERS=1)"
elif start_mongo; then
    :
else
    if [ "${CI:-}" = "true" ]; then
        echo "error: could not install or start the MongoDB test server; CI must run the MongoDB suites" >&2
        exit 1
    fi
    echo "== MongoDB suites: SKIPPED (could not install or start SecantusDB; set MONGODB_URI to use another server)"
fi

if [ -n "${POSTGRES_URL:-}" ]; then
    echo "== PostgreSQL suites: using POSTGRES_URL"
    if find_postgres && [ "$(id -u)" = 0 ]; then
        # The fault suite's own clusters: initdb refuses root.
        if id -u postgres >/dev/null 2>&1; then pg_user=postgres; else pg_user=nobody; fi
        export SHYLOCK_PG_RUN_AS="runuser -u $pg_user --"
    fi
elif [ "${SHYLOCK_NO_SERVERS:-}" = "1" ]; then
    echo "== PostgreSQL suites: SKIPPED (SHYLOCK_NO_SERVERS=1)"
elif start_postgres; then
    start_pgbouncer || echo "== PostgreSQL through PgBouncer: SKIPPED (pgbouncer is not installed or installable)"
else
    if [ "${CI:-}" = "true" ]; then
        echo "error: could not install or start PostgreSQL; CI must run the PostgreSQL suites" >&2
        exit 1
    fi
    echo "== PostgreSQL suites: SKIPPED (could not install or start PostgreSQL; set POSTGRES_URL to use a server)"
fi

if [ -n "${ARANGO_URL:-}" ]; then
    echo "== ArangoDB suites: real server at ARANGO_URL, and the fake-server suite"
else
    echo "== ArangoDB suites: fake-server suite only; real-server suite SKIPPED (ARANGO_URL is not set)"
fi

# Every feature but `testcontainers` (which would start the server suites
# without --ignored, in containers): those suites stay ignored in this run
# and run below with --ignored against the servers started above.
workspace_features=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
print(",".join(p["name"] + "/" + f for p in json.load(sys.stdin)["packages"]
               for f in p["features"] if f != "testcontainers"))')
cargo test --workspace --features "$workspace_features" "$@"
echo "== the minimal backend of README's \"Writing a backend\" against the conformance suite"
cargo run --quiet --all-features --example minimal_backend
echo "== the semaphore and election examples"
cargo run --quiet --all-features --example semaphore >/dev/null
cargo run --quiet --all-features --example election
cargo run --quiet --all-features --example transfer >/dev/null
cargo run --quiet --all-features --example request_lock -- --demo >/dev/null
echo "== the metrics example: a Prometheus scrape shows shylock's metrics"
scrape=$(cargo run --quiet --all-features --example metrics)
for metric in shylock_acquire_wait_seconds shylock_acquire_attempts shylock_held_seconds shylock_waiters; do
    grep -q "^$metric" <<<"$scrape" || { echo "error: the metrics example printed no $metric" >&2; exit 1; }
done

if command -v tmux >/dev/null 2>&1; then
    echo "== the shylock command on a terminal (ignored above): watch and release driven in tmux"
    cargo test --all-features -p shylock-cli --test cli "$@" -- --ignored tmux_
else
    echo "== the shylock command on a terminal: SKIPPED (tmux is not installed)"
fi

if [ -n "${MONGODB_URI:-}" ]; then
    echo "== MongoDB suites (ignored above): running with --ignored against $MONGODB_URI"
    cargo test -p shylock-mongo --test conformance --test rwlock --test blocking --test runtimes --test fenced "$@" -- --ignored
    if [ -n "${SHYLOCK_PYTHON:-}" ] || install_python_shylock; then
        echo "== Python shylock compatibility: Rust and Python shylock $python_shylock_version processes on the same locks"
        cargo test -p shylock-mongo --test python_compat "$@" -- --ignored
    elif [ "${CI:-}" = "true" ]; then
        echo "error: could not install Python shylock $python_shylock_version; CI must run the interop test" >&2
        exit 1
    else
        echo "== Python shylock interop test: SKIPPED (could not install shylock==$python_shylock_version with pymongo)"
    fi
    cargo test --all-features -p shylock --test multiprocess --test multiprocess_rw "$@" -- --ignored mongo_
    echo "== the README's cron program as a whole process, 20 runs in a row on MongoDB"
    cargo test --all-features -p shylock --test cron "$@" -- --ignored mongo_
    cargo test --all-features -p shylock-cli --test cli "$@" -- --ignored mongo_
    # Last: it rewrites one document thousands of times, after which the
    # SecantusDB test server is slower for everything.
    if [ -n "$server_pid" ]; then
        echo "== MongoDB semaphore suite (32 tasks x 3 permits x 20 rounds against SecantusDB)"
        SHYLOCK_SEMAPHORE_ROUNDS="${SHYLOCK_SEMAPHORE_ROUNDS:-20}" \
            cargo test -p shylock-mongo --test semaphore "$@" -- --ignored
    else
        cargo test -p shylock-mongo --test semaphore "$@" -- --ignored
    fi
fi
if [ -n "${SECANTUSD:-}" ]; then
    echo "== fault-injection suite (ignored above): stalled server, cut connections, kill -9 and restart, with $SECANTUSD"
    cargo test -p shylock-mongo --test faults "$@" -- --ignored --nocapture --test-threads=2
elif [ "${CI:-}" = "true" ]; then
    echo "error: the fault-injection suite needs SecantusDB (SECANTUSD); CI must run it" >&2
    exit 1
else
    echo "== fault-injection suite: SKIPPED (SecantusDB is not installed; SECANTUSD is not set)"
fi
if [ -n "${POSTGRES_URL:-}" ]; then
    echo "== PostgreSQL suites (ignored above): running with --ignored against $POSTGRES_URL"
    # faults.rs creates clusters of its own (SHYLOCK_PG_BIN); without the
    # binaries it is skipped by name.
    if [ -n "${SHYLOCK_PG_BIN:-}" ]; then
        cargo test --features bench -p shylock-postgres --test conformance --test faults --test fenced "$@" -- --ignored --test-threads=4
    else
        echo "== PostgreSQL fault suite: SKIPPED (no PostgreSQL binaries here: SHYLOCK_PG_BIN is not set)"
        cargo test --features bench -p shylock-postgres --test conformance --test fenced "$@" -- --ignored
    fi
    cargo test --all-features -p shylock --test multiprocess --test multiprocess_rw "$@" -- --ignored postgres_
    cargo test --all-features -p shylock-cli --test cli "$@" -- --ignored postgres_
fi
if [ -n "${POSTGRES_POOLER_URL:-}" ]; then
    echo "== PostgreSQL conformance suite through PgBouncer (transaction mode) at $POSTGRES_POOLER_URL"
    cargo test --features bench -p shylock-postgres --test pooler "$@" -- --ignored
fi
# The chaos run's smoke version (scripts/chaos.sh runs the long one): each
# run starts its own server where it restarts one (SECANTUSD, SHYLOCK_PG_BIN).
chaos=(cargo run --quiet --all-features --example chaos -- --minutes 0.5 --workers 3)
echo "== chaos run, 30 s per backend: 3 workers paused and killed, their connections stalled, cut and slowed, the database killed and restarted; history checked"
"${chaos[@]}" --backend sqlite
if [ -n "${SECANTUSD:-}" ]; then
    "${chaos[@]}" --backend mongo
else
    echo "== chaos run on MongoDB: SKIPPED (SecantusDB is not installed; SECANTUSD is not set)"
fi
if [ -n "${SHYLOCK_PG_BIN:-}" ]; then
    "${chaos[@]}" --backend postgres
else
    echo "== chaos run on PostgreSQL: SKIPPED (no PostgreSQL binaries here: SHYLOCK_PG_BIN is not set)"
fi
if [ -n "${ARANGO_URL:-}" ]; then
    echo "== ArangoDB real-server suite (ignored above): running with --ignored against $ARANGO_URL"
    cargo test -p shylock-arango --test real_server "$@" -- --ignored
fi
