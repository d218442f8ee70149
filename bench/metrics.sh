#!/usr/bin/env bash
# What one Prometheus scrape of /metrics costs on a database of a given size (default 100,000
# contacts, two provider attempts each, spread over 48 h): milliseconds per scrape through
# Django's WSGI handler, median of several rounds, and the queries it runs. Throwaway
# PostgreSQL and Redis as scripts/test starts them; production settings with a METRICS_TOKEN.
# Usage: bench/metrics.sh [contacts] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
export SLUICE_ENV=production SECRET_KEY=bench-only ALLOWED_HOSTS=testserver REQUIRE_HTTPS=false
export METRICS_TOKEN=bench-metrics-token
export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
.venv/bin/python manage.py migrate -v 0
.venv/bin/python bench/metrics.py "$@"
