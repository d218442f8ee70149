# Sourced by scripts/test and bench scripts: start throwaway PostgreSQL and Redis on free
# loopback ports when DATABASE_URL / REDIS_URL are unset; stop them on exit.
# Installs the Debian packages `postgresql` and `redis-server` when missing (root only).

_sluice_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_sluice_apt_install() {
  if [ "$(id -u)" != "0" ]; then
    echo "error: $* not installed; install the Debian packages ($*) or set DATABASE_URL/REDIS_URL" >&2
    exit 2
  fi
  echo "installing $* ..." >&2
  if [ -z "${_SLUICE_APT_UPDATED:-}" ]; then
    apt-get update -qq >&2
    _SLUICE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

_sluice_pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

SLUICE_SERVICES_DIR=""

sluice_services_stop() {
  [ -n "$SLUICE_SERVICES_DIR" ] || return 0
  if [ -f "$SLUICE_SERVICES_DIR/redis/redis.pid" ]; then
    kill "$(cat "$SLUICE_SERVICES_DIR/redis/redis.pid")" 2>/dev/null || true
  fi
  if [ -d "$SLUICE_SERVICES_DIR/pg" ]; then
    _sluice_as_pg "$SLUICE_PG_BIN/pg_ctl" -D "$SLUICE_SERVICES_DIR/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$SLUICE_SERVICES_DIR"
  SLUICE_SERVICES_DIR=""
  unset SLUICE_PG_DATA SLUICE_REDIS_DIR
}

_sluice_as_pg() {
  # PostgreSQL refuses to run as root: use the `postgres` system user then.
  if [ "$(id -u)" = "0" ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

sluice_services_start() {
  if [ -n "${DATABASE_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
    return 0
  fi
  SLUICE_SERVICES_DIR=$(mktemp -d /tmp/sluice-services.XXXXXX)
  chmod 755 "$SLUICE_SERVICES_DIR"
  trap sluice_services_stop EXIT

  if [ -z "${DATABASE_URL:-}" ]; then
    SLUICE_PG_BIN=$(_sluice_pg_bin) || { _sluice_apt_install postgresql; SLUICE_PG_BIN=$(_sluice_pg_bin); }
    if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then
      useradd --system --no-create-home postgres
    fi
    local port; port=$(_sluice_free_port)
    mkdir -p "$SLUICE_SERVICES_DIR/pg"
    [ "$(id -u)" = "0" ] && chown postgres "$SLUICE_SERVICES_DIR/pg"
    _sluice_as_pg "$SLUICE_PG_BIN/initdb" -D "$SLUICE_SERVICES_DIR/pg" -U sluice --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    # Throwaway data: commits need not survive a crash, which spares the tests every fsync.
    # SLUICE_PG_DURABLE=1 keeps PostgreSQL's durable defaults (benchmarks, docs/benchmarks.md).
    # The options go into the data directory's own postgresql.conf rather than onto pg_ctl's
    # command line, so that a plain `pg_ctl start` or `restart` brings back the same server
    # (the fault tests stop and restart it: tests/support/outages.py).
    {
      echo "port = $port"
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$SLUICE_SERVICES_DIR/pg'"
      echo "max_connections = 300"
      if [ "${SLUICE_PG_DURABLE:-}" != "1" ]; then
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
      fi
    } | _sluice_as_pg tee -a "$SLUICE_SERVICES_DIR/pg/postgresql.conf" >/dev/null
    _sluice_as_pg "$SLUICE_PG_BIN/pg_ctl" -D "$SLUICE_SERVICES_DIR/pg" -w \
      -l "$SLUICE_SERVICES_DIR/pg/log" start >/dev/null
    _sluice_as_pg "$SLUICE_PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U sluice sluice
    export DATABASE_URL="postgres://sluice@127.0.0.1:$port/sluice"
    # For tests that restart the server they run on; only ever set for a server started here.
    export SLUICE_PG_DATA="$SLUICE_SERVICES_DIR/pg" SLUICE_PG_BIN
  fi

  if [ -z "${REDIS_URL:-}" ]; then
    command -v redis-server >/dev/null 2>&1 || _sluice_apt_install redis-server
    local rport; rport=$(_sluice_free_port)
    local rdir="$SLUICE_SERVICES_DIR/redis"
    mkdir -p "$rdir"
    # No RDB snapshots, but an append-only file written once a second: a Redis that the fault
    # tests stop or kill comes back with its queues, as a production Redis should be set up.
    # A file, so that tests/support/outages.py starts the very same server again.
    cat >"$rdir/redis.conf" <<EOF
port $rport
bind 127.0.0.1
save ""
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
dir $rdir
pidfile $rdir/redis.pid
logfile $rdir/redis.log
daemonize yes
EOF
    redis-server "$rdir/redis.conf" >/dev/null
    for _ in $(seq 50); do
      redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break
      sleep 0.1
    done
    export REDIS_URL="redis://127.0.0.1:$rport/0"
    # For tests that restart the server they run on; only ever set for a server started here.
    export SLUICE_REDIS_DIR="$rdir"
  fi
}

# Headless Chromium for the admin browser test (tests/ops/test_browser.py): the Debian
# packages `chromium` and `chromium-driver`, installed when missing and running as root.
# Without them (not root, or no package mirror) that one test skips itself; nothing fails.
sluice_browser_ensure() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != "0" ]; then
    echo "note: chromium/chromium-driver missing (not root): the browser test will skip" >&2
    return 0
  fi
  _sluice_apt_install chromium chromium-driver \
    || echo "warning: could not install chromium: the browser test will skip" >&2
}
