# Sourced by the bench scripts that profile (webhooks.sh, sync_profile.sh): sets BENCH_PYSPY
# to a py-spy, unless given: one on PATH, else installed from PyPI into $BENCH_TOOLS (default
# /tmp/sluice-bench-tools); empty when neither works.
bench_pyspy_find() {
  [ -n "${BENCH_PYSPY:-}" ] && return 0
  local tools="${BENCH_TOOLS:-/tmp/sluice-bench-tools}"
  if command -v py-spy >/dev/null 2>&1; then
    BENCH_PYSPY=$(command -v py-spy)
  elif [ -x "$tools/bin/py-spy" ] \
    || .venv/bin/python -m pip install --quiet --target "$tools" py-spy >&2; then
    BENCH_PYSPY="$tools/bin/py-spy"
  else
    BENCH_PYSPY=""
  fi
  export BENCH_PYSPY
}
