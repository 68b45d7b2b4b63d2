#!/usr/bin/env bash
# The ingest benchmark, on a fresh machine: installs/starts what it needs (the Temporal CLI,
# PostgreSQL), builds the release binaries, then runs `rindle-bench`, which starts an in-memory
# Temporal dev server, the Mux simulator (no latency, webhooks on) and the release worker, and
# prints one `key: value` line per figure.
#
#   scripts/bench.sh                 N = 1000 ingests, 10 000 parked; writes BENCHMARKS.md
#   scripts/bench.sh --n 500 --parked 2000
#   scripts/bench.sh --smoke         tiny N (CI): checks that it completes and prints every figure
#
# Any other option is passed to rindle-bench (e.g. --activity-slots 4,16,64); see
# `target/release/rindle-bench --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

smoke=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    *) args+=("$1") ;;
  esac
  shift
done

ensure_temporal_cli
ensure_postgres
export RINDLE_TEST_DATABASE_URL=${RINDLE_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}

echo "==> building release binaries" >&2
cargo build --release -p rindle-worker -p rindle-tests --bins >&2

bench=target/release/rindle-bench
if [ "$smoke" = 1 ]; then
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  RINDLE_BENCH_COMMAND="scripts/bench.sh --smoke" \
    "$bench" --n 20 --parked 50 --rounds 1 --activity-slots 4,16 --stall-timeout-s 60 --check \
      ${args[@]+"${args[@]}"} | tee "$out"
  # The binary checks its own figures (--check); check the printed text too.
  missing=0
  for key in \
    machine.cores \
    ingest.throughput_to_processing_per_s ingest.throughput_to_ready_per_s \
    ingest.latency_to_processing_ms.p50 ingest.latency_to_processing_ms.p95 \
    ingest.latency_to_processing_ms.p99 ingest.history_events_per_ingest \
    worker.cpu_s worker.cpu_s_per_1000 worker.peak_rss_mib worker.peak_rss_growth_mib_per_1000 \
    floor.one_activity.throughput_per_s floor.n_activities.throughput_per_s \
    ratio.ours_vs_one_activity ratio.ours_vs_n_activities ratio.history_events_vs_n_activities \
    parked.count parked.worker_rss_mib parked.rss_kib_per_ingest; do
    if ! grep -q "^$key: [^ ]" "$out"; then
      echo "error: figure '$key' was not printed" >&2
      missing=1
    fi
  done
  [ "$missing" = 0 ] || exit 1
  echo "==> smoke run OK: every figure printed" >&2
else
  RINDLE_BENCH_COMMAND="scripts/bench.sh${args[*]+ ${args[*]}}" \
    "$bench" --markdown BENCHMARKS.md ${args[@]+"${args[@]}"}
fi
