#!/usr/bin/env bash
# Fault recovery benchmark on the production-shaped stack (the `worker`, `webhooks`, `beat`
# and `simulator` processes as in the Procfile, throwaway PostgreSQL + Redis, a local webhook
# receiver): for each fault (a process SIGKILLed, Redis stopped or killed, PostgreSQL
# restarted) the seconds from the fault to the last affected contact finished and to the last
# webhook delivered, with a consistency check; one JSON object on stdout, a line per fault
# on stderr.
# Usage: bench/faults.sh [bulks-per-fault] [rounds]    (100 live contacts per bulk)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap
# Production's durable PostgreSQL (fsync on): the restart fault is then a real one.
export SLUICE_PG_DURABLE="${SLUICE_PG_DURABLE:-1}"
# shellcheck source=scripts/services.sh
. scripts/services.sh
sluice_services_start
export SLUICE_ENV=production SECRET_KEY=bench-only ALLOWED_HOSTS=127.0.0.1 REQUIRE_HTTPS=false
# The receiver is on loopback over plain HTTP; production refuses both by default.
export WEBHOOK_ALLOW_PRIVATE_TARGETS=true WEBHOOK_ALLOW_HTTP=true LOG_LEVEL=WARNING
export SLUICE_VAR_DIR="$(mktemp -d /tmp/sluice-bench-faults.XXXXXX)"

bench_pid=""
# Whatever happens (a failure, Ctrl-C, SIGTERM), nothing started here outlives the script:
# faults.py stops its processes itself; should it die first, the pids it recorded are killed
# here (only if still one of ours: the project's virtualenv in the command line).
faults_stop() {
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  if [ -f "$SLUICE_VAR_DIR/pids" ]; then
    while read -r pid; do
      if grep -qF "$PWD/.venv" "/proc/$pid/cmdline" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$SLUICE_VAR_DIR/pids"
  fi
  sluice_services_stop
}
trap faults_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

.venv/bin/python bench/faults.py "${1:-2}" "${2:-1}" &
bench_pid=$!
wait "$bench_pid"
