#!/usr/bin/env bash
# In-process cost of the intake request (no gunicorn, no load generator): CPU per request,
# PostgreSQL's CPU per intake INSERT with and without prepared statements, and with
# --callgrind the instructions per request (repeatable on a noisy VM). Throwaway PostgreSQL
# and Redis as scripts/test starts them; production settings.
# Usage: bench/intake.sh [requests] [--callgrind]   Figures: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
if [[ " $* " == *" --callgrind "* ]]; then
  command -v valgrind >/dev/null 2>&1 || _sluice_apt_install valgrind
fi
export SLUICE_ENV=production SECRET_KEY=bench-only ALLOWED_HOSTS=127.0.0.1 REQUIRE_HTTPS=false
export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
.venv/bin/python manage.py migrate -v 0
.venv/bin/python bench/intake.py "$@"
