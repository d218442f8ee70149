#!/usr/bin/env bash
# Webhook delivery benchmark on the production-shaped stack (the `webhooks` and `worker`
# processes as in the Procfile, throwaway PostgreSQL + Redis, a fast local receiver):
# deliveries/s, and the delay from a contact finishing to its webhook arriving.
# Usage: bench/webhooks.sh [deliveries] [latency-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
export SLUICE_ENV=production SECRET_KEY=bench-only ALLOWED_HOSTS=127.0.0.1 REQUIRE_HTTPS=false
# The receiver is on loopback over plain HTTP; production refuses both by default.
export WEBHOOK_ALLOW_PRIVATE_TARGETS=true WEBHOOK_ALLOW_HTTP=true LOG_LEVEL=WARNING
export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
.venv/bin/python bench/webhooks.py "${1:-2000}" "${2:-20}"
