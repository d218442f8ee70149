#!/usr/bin/env bash
# Run one benchmark command in two checkouts, A B A B …, for a before/after ratio that holds
# on a noisy machine (each side's runs interleaved, so drift hits both alike). Each run's
# stdout (the benchmark's JSON) goes to OUT/<a|b>-<n>.json, its stderr beside it.
# Usage: bench/alternate.sh CHECKOUT_A CHECKOUT_B PAIRS OUT -- COMMAND [ARGS…]
#   e.g. git worktree add /tmp/base a6d30c5 && (cd /tmp/base && scripts/bootstrap)
#        bench/alternate.sh /tmp/base . 2 /tmp/ab -- bench/sync.sh 10 3
set -euo pipefail
[ $# -ge 6 ] && [ "$5" = "--" ] || { sed -n 2,8p "$0" >&2; exit 2; }
a=$(cd "$1" && pwd) b=$(cd "$2" && pwd) pairs=$3 out=$4
shift 5
mkdir -p "$out"
for i in $(seq 1 "$pairs"); do
  for side in a b; do
    dir=$a; [ "$side" = b ] && dir=$b
    echo "pair $i: $side ($(git -C "$dir" rev-parse --short HEAD))" >&2
    (cd "$dir" && "$@" >"$out/$side-$i.json" 2>"$out/$side-$i.err")
  done
done
echo "$out" >&2
