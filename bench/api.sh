#!/usr/bin/env bash
# Intake API benchmark on the production-shaped stack (gunicorn as in the Procfile,
# throwaway PostgreSQL + Redis): GET /healthz ceiling, POST /api/v1/enrich at 50
# connections, bulk-of-100 latency. Usage: bench/api.sh [seconds-per-phase] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
command -v wrk >/dev/null 2>&1 || _sluice_apt_install wrk
export SLUICE_ENV=production SECRET_KEY=bench-only ALLOWED_HOSTS=127.0.0.1 REQUIRE_HTTPS=false
export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
.venv/bin/python bench/api.py "${1:-10}" "${2:-3}"
