#!/usr/bin/env bash
# Runs every test of the workspace.
#
# Starts the test servers it can: a MongoDB wire-protocol server
# (SecantusDB, from PyPI, installed once into a cached virtualenv) on a free
# loopback port, exported as MONGODB_URI for the MongoDB suites. If
# MONGODB_URI is already set, that server is used instead; with neither and
# a reachable Docker engine, `docker compose` starts MongoDB and ArangoDB.
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
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${SHYLOCK_TEST_CACHE:-$HOME/.cache/shylock}"
secantus_version="0.7.0b3"
server_pid=""
cleanup() {
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
    # Started with test commands: the fault-injection tests must run.
    export SHYLOCK_REQUIRE_FAILPOINTS=1
    echo "== MongoDB suites: SecantusDB $secantus_version at $MONGODB_URI (fault injection on)"
}

compose_started=""
start_compose() {
    # Real servers in containers, for contributors with Docker.
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || return 1
    echo "== starting MongoDB and ArangoDB with docker compose"
    docker compose up -d --wait mongo arangodb || return 1
    compose_started=1
    export MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true"
    export ARANGO_URL="http://127.0.0.1:8529" ARANGO_PASSWORD="${ARANGO_PASSWORD:-shylock}"
}

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

if [ -n "${ARANGO_URL:-}" ]; then
    echo "== ArangoDB suites: real server at ARANGO_URL, and the fake-server suite"
else
    echo "== ArangoDB suites: fake-server suite only; real-server suite SKIPPED (ARANGO_URL is not set)"
fi

cargo test --workspace --all-features "$@"
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
    cargo test --all-features -p shylock-mongo --test conformance --test blocking --test runtimes --test fenced "$@" -- --ignored
    if [ -n "${SHYLOCK_PYTHON:-}" ] || install_python_shylock; then
        echo "== Python shylock compatibility: Rust and Python shylock $python_shylock_version processes on the same locks"
        cargo test --all-features -p shylock-mongo --test python_compat "$@" -- --ignored
    elif [ "${CI:-}" = "true" ]; then
        echo "error: could not install Python shylock $python_shylock_version; CI must run the interop test" >&2
        exit 1
    else
        echo "== Python shylock interop test: SKIPPED (could not install shylock==$python_shylock_version with pymongo)"
    fi
    cargo test --all-features -p shylock --test multiprocess "$@" -- --ignored mongo_
    cargo test --all-features -p shylock-cli --test cli "$@" -- --ignored mongo_
    # Last: it rewrites one document thousands of times, after which the
    # SecantusDB test server is slower for everything.
    if [ -n "$server_pid" ]; then
        echo "== MongoDB semaphore suite (32 tasks x 3 permits x 20 rounds against SecantusDB)"
        SHYLOCK_SEMAPHORE_ROUNDS="${SHYLOCK_SEMAPHORE_ROUNDS:-20}" \
            cargo test --all-features -p shylock-mongo --test semaphore "$@" -- --ignored
    else
        cargo test --all-features -p shylock-mongo --test semaphore "$@" -- --ignored
    fi
fi
if [ -n "${SECANTUSD:-}" ]; then
    echo "== fault-injection suite (ignored above): stalled server, cut connections, kill -9 and restart, with $SECANTUSD"
    cargo test --all-features -p shylock-mongo --test faults "$@" -- --ignored --nocapture --test-threads=2
elif [ "${CI:-}" = "true" ]; then
    echo "error: the fault-injection suite needs SecantusDB (SECANTUSD); CI must run it" >&2
    exit 1
else
    echo "== fault-injection suite: SKIPPED (SecantusDB is not installed; SECANTUSD is not set)"
fi
if [ -n "${ARANGO_URL:-}" ]; then
    echo "== ArangoDB real-server suite (ignored above): running with --ignored against $ARANGO_URL"
    cargo test --all-features -p shylock-arango --test real_server "$@" -- --ignored
fi
