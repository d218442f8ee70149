#!/usr/bin/env bash
# Synchronous enrich benchmark (issue 16): POST /api/v1/enrich/sync from 8 and 32 concurrent
# clients beside POST /api/v1/enrich, on the production-shaped stack (`web`, `worker` and
# `simulator` as in the Procfile, throwaway PostgreSQL + Redis, the simulator at 50 ms per
# call, a live key so the real adapters run). Prints one JSON document.
# Usage: bench/sync.sh [seconds-per-phase] [rounds]   (default 15 3; about 5 minutes)
# Knobs (environment): BENCH_CLIENTS (8,32), BENCH_ACCOUNTS (1: every client on one live
# account), BENCH_WEB_<clients> ("threads,waits" per gunicorn process; default clients/2+4
# threads, clients/2 waits), BENCH_SYNC_TIMEOUT (10 s), BENCH_KINDS (email),
# SIMULATOR_LATENCY_MS (50), BENCH_WORKERS (1: how many `worker` processes),
# WORKER_CONCURRENCY and ENRICHMENT_CONCURRENCY (the Procfile's defaults, 4 and 16),
# WEB_CONCURRENCY (2), ENRICHMENT_PUBLISH_LINGER_MS (10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap >&2
unset DATABASE_URL REDIS_URL CELERY_BROKER_URL
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
export SLUICE_ENV=production SECRET_KEY=bench-only ALLOWED_HOSTS=127.0.0.1 REQUIRE_HTTPS=false
export LOG_LEVEL=WARNING
export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench-sync.XXXXXX)"
# services.sh's own EXIT trap stops PostgreSQL and Redis; keep it, and drop the var folder.
trap 'rm -rf "$SLUICE_VAR_DIR"; sluice_services_stop' EXIT
.venv/bin/python bench/sync.py "${1:-15}" "${2:-3}"
