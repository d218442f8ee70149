#!/usr/bin/env bash
# Rate limiter latency benchmark against throwaway PostgreSQL + Redis (as scripts/test
# starts them). Usage: bench/ratelimit.sh [iterations]   Figures: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
.venv/bin/python manage.py migrate -v 0
.venv/bin/python bench/ratelimit.py "${1:-5000}"
