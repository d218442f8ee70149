#!/usr/bin/env bash
# CSV import benchmark (issue 17): the `web` and `worker` processes as in the Procfile,
# production settings, throwaway PostgreSQL + Redis, a sandbox key. For each size, a generated
# CSV is uploaded (multipart) and timed until every contact is created (and, within a
# deadline, enriched), with the worker's peak RSS (VmHWM); then an export of the import is
# timed until its file is ready, and downloaded. One JSON document on stdout; progress on
# stderr.
# Usage: bench/imports.sh [sizes]   (default "10000 100000": a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap
export SLUICE_PG_DURABLE="${SLUICE_PG_DURABLE:-1}"
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
export SLUICE_ENV=production SECRET_KEY=bench-only ALLOWED_HOSTS=127.0.0.1 REQUIRE_HTTPS=false
export LOG_LEVEL=WARNING BIND_HOST=127.0.0.1 PORT="${BENCH_PORT:-8031}"
SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
export SLUICE_VAR_DIR
.venv/bin/python bench/imports.py ${1:-10000 100000}
