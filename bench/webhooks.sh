#!/usr/bin/env bash
# Webhook delivery benchmark (issue 15) on the production-shaped stack: the `webhooks` (and, for
# the latency phase, `worker`) process as in the Procfile, production settings, throwaway
# PostgreSQL + Redis, a fast local receiver. Rounds alternate the webhooks process (A) and a
# bare sender (B, bench/bare_sender.py) over the same bodies, and print the ratio per round and
# its median; then where the time goes (CPU per delivery per process and thread, SQL
# statements, Redis commands, Celery messages, a py-spy GIL profile) and the finish -> arrival
# latency at 100 contacts/s. One JSON document on stdout; progress on stderr.
# Usage: bench/webhooks.sh [deliveries] [latency-seconds] [rounds]   (2000 20 3: about 5 min)
# py-spy (thread names, GIL profile): BENCH_PYSPY=/path/to/py-spy, else one on PATH, else it is
# installed from PyPI into $BENCH_TOOLS (default /tmp/sluice-bench-tools); without it the
# thread split has no names and there is no profile. BENCH_PROFILE=0 skips the profile pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap
# PostgreSQL as in production: durable commits (fsync, synchronous_commit); 0 for the tests'
# throwaway settings.
export SLUICE_PG_DURABLE="${SLUICE_PG_DURABLE:-1}"
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
export SLUICE_ENV=production SECRET_KEY=bench-only ALLOWED_HOSTS=127.0.0.1 REQUIRE_HTTPS=false
# The receiver is on loopback over plain HTTP; production refuses both by default.
export WEBHOOK_ALLOW_PRIVATE_TARGETS=true WEBHOOK_ALLOW_HTTP=true LOG_LEVEL=WARNING
SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
export SLUICE_VAR_DIR
# shellcheck source=bench/pyspy.sh
. bench/pyspy.sh
bench_pyspy_find
[ -n "$BENCH_PYSPY" ] || echo "note: py-spy unavailable: no thread names, no GIL profile" >&2
.venv/bin/python bench/webhooks.py "${1:-2000}" "${2:-20}" "${3:-3}"
