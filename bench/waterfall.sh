#!/usr/bin/env bash
# Waterfall throughput benchmark (figures in docs/benchmarks.md, "## Waterfall").
# Usage: bench/waterfall.sh [embedded|postgres|both]   (default: both)
#   embedded: SQLite + filesystem broker in a fresh var/ folder (the scripts/run default)
#   postgres: throwaway PostgreSQL + Redis from scripts/services.sh
# Knobs: WORKER_CONCURRENCY, ENRICHMENT_CONCURRENCY, SIMULATOR_LATENCY_MS, BENCH_* (see
# bench/waterfall.py). Each run is bounded by BENCH_TIMEOUT (default 300 s).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap >/dev/null
mode="${1:-both}"

run_embedded() (
  unset DATABASE_URL REDIS_URL CELERY_BROKER_URL
  export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench-wf.XXXXXX)"
  .venv/bin/python manage.py migrate -v 0
  .venv/bin/python bench/waterfall.py
  rm -rf "$SLUICE_VAR_DIR"
)

run_postgres() (
  unset DATABASE_URL REDIS_URL CELERY_BROKER_URL
  # shellcheck source=scripts/services.sh
  . scripts/services.sh
  sluice_services_start
  export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench-wf.XXXXXX)"
  .venv/bin/python manage.py migrate -v 0
  .venv/bin/python bench/waterfall.py
  rm -rf "$SLUICE_VAR_DIR"
)

case "$mode" in
  embedded) run_embedded ;;
  postgres) run_postgres ;;
  both) run_embedded; run_postgres ;;
  *) echo "usage: $0 [embedded|postgres|both]" >&2; exit 2 ;;
esac
