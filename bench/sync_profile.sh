#!/usr/bin/env bash
# Where the sync path's CPU goes (docs/benchmarks.md "Synchronous enrich: the worker
# process's finisher"): bench/sync.sh runs one 40 s phase of N clients, and 18 s into it
# py-spy records a GIL profile (`record --gil --rate 200`: samples while a thread holds the
# GIL) of the `worker` process and of each gunicorn worker for 15 s; then bench/gil_shares.py
# prints each one's shares by step. Usage: bench/sync_profile.sh [clients]   (default 8)
# py-spy: BENCH_PYSPY=/path, else one on PATH, else installed from PyPI into $BENCH_TOOLS
# (default /tmp/sluice-bench-tools). Output: $BENCH_OUT (default a new /tmp folder).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap >&2
# shellcheck source=bench/pyspy.sh
. bench/pyspy.sh
bench_pyspy_find
[ -n "$BENCH_PYSPY" ] || { echo "error: py-spy unavailable" >&2; exit 2; }
out="${BENCH_OUT:-$(mktemp -d /tmp/sluice-sync-profile.XXXXXX)}"
mkdir -p "$out"
BENCH_CLIENTS="${1:-8}" bench/sync.sh 40 1 >"$out/bench.json" 2>"$out/bench.err" &
bench=$!
worker="" web=""
for _ in $(seq 1 240); do
  worker=$(pgrep -f "celery -A config worker -Q enrichment" | head -1 || true)
  web=$(pgrep -f "gunicorn config.wsgi" | tail -n +2 | tr '\n' ' ' || true)
  [ -n "$worker" ] && [ -n "$web" ] && break
  sleep 0.5
done
[ -n "$worker" ] && [ -n "$web" ] || { echo "error: the stack did not start" >&2; exit 1; }
sleep 18
spy=("$BENCH_PYSPY" record --gil --rate 200 --duration 15 --nonblocking --format raw)
"${spy[@]}" --pid "$worker" --output "$out/worker.txt" >/dev/null 2>&1 &
for pid in $web; do
  "${spy[@]}" --pid "$pid" --output "$out/web-$pid.txt" >/dev/null 2>&1 &
done
wait "$bench"
wait
for f in "$out"/worker.txt "$out"/web-*.txt; do
  [ -s "$f" ] && .venv/bin/python bench/gil_shares.py "$f"
done
echo "profiles and the phase's JSON: $out" >&2
