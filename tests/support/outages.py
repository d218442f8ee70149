"""Real faults on the suite's own servers: stop, kill and restart PostgreSQL and Redis.

These act on the throwaway servers ``scripts/services.sh`` started for this run, found
through the variables it exports only for servers it started itself: ``SLUICE_PG_DATA`` and
``SLUICE_PG_BIN`` (PostgreSQL's data and bin directories; its options are in that data
directory's ``postgresql.conf``) and ``SLUICE_REDIS_DIR`` (Redis's directory, holding the
``redis.conf`` it was started from, its pidfile and its append-only file). Without them (a
``DATABASE_URL``/``REDIS_URL`` of your own) the helpers skip the calling test: the suite
never stops a server it does not own.

Every start waits, with a deadline, until the server answers again; by default it then drops
this process's pooled connections, which are stale after a restart (Django's database
connections, the cache's and the rate limiter's Redis pools, kombu's broker pools). Pass
``reset_connections=False`` to prove that the code under test reconnects by itself. The
context managers always bring the server back, whatever the body raised, so a failing test
leaves the servers running for the rest of the suite.

Stopping PostgreSQL cuts every connection: use ``django_db(transaction=True)``, since a test
run inside one transaction could not roll it back afterwards. Send requests across a restart
with ``WebProcessClient``: Django's test client switches off the per-request connection
checks a web server runs, so with it a cut connection would never be replaced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import close_old_connections
from rest_framework.test import APIClient

from tests.support.worker import reset_broker_connections

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def _deadline_loop(timeout: float, what: str, probe) -> None:
    """Call ``probe`` until it returns True; raise naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception as exc:  # the server is not there yet: that is what we wait for
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {timeout:.0f}s (last error: {last!r})")


def _required(*names: str) -> list[str]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} unset: this test stops a server and only runs on the "
            "throwaway servers scripts/services.sh starts (scripts/test without "
            "DATABASE_URL/REDIS_URL)"
        )
    return [os.environ[name] for name in names]


# --- Redis ------------------------------------------------------------------------------------


def _redis_dir() -> Path:
    return Path(_required("SLUICE_REDIS_DIR")[0])


def _redis_conf(directory: Path) -> dict[str, str]:
    conf: dict[str, str] = {}
    for line in (directory / "redis.conf").read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#"):
            conf[key] = value.strip()
    return conf


def _redis_client(directory: Path) -> redis.Redis:
    conf = _redis_conf(directory)
    return redis.Redis(
        host=conf.get("bind", "127.0.0.1").split()[0],
        port=int(conf["port"]),
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=None,
    )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: nobody may reap a daemon's corpse here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _redis_pid(directory: Path) -> int | None:
    try:
        return int((directory / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def redis_ping(directory: Path | None = None) -> bool:
    """Whether the suite's Redis answers PING (False while it is down or loading its AOF)."""
    client = _redis_client(directory or _redis_dir())
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_stop(kill: bool = False) -> None:
    """Stop the suite's Redis: SIGTERM (it flushes its append-only file and exits), or
    SIGKILL with ``kill=True`` (a crash: at most the last second of writes is lost)."""
    directory = _redis_dir()
    pid = _redis_pid(directory)
    if pid is None or not _alive(pid):
        return
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    _deadline_loop(STOP_TIMEOUT, f"Redis (pid {pid}) did not exit", lambda: not _alive(pid))
    _deadline_loop(
        STOP_TIMEOUT, "Redis still answers after its process exited", lambda: not redis_ping()
    )


def redis_start(*, reset_connections: bool = True) -> None:
    """Start the suite's Redis again, from the same ``redis.conf`` (same port, directory,
    append-only file), and wait until it answers PING (its AOF loaded)."""
    directory = _redis_dir()
    if not redis_ping(directory):
        result = subprocess.run(  # daemonizes (the conf says so), so this returns at once
            ["redis-server", str(directory / "redis.conf")],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"redis-server failed: {result.stdout}{result.stderr}")
        _deadline_loop(
            START_TIMEOUT,
            f"Redis did not answer PING (see {directory / 'redis.log'})",
            lambda: redis_ping(directory),
        )
    if reset_connections:
        reset_redis_connections()


@contextlib.contextmanager
def redis_down(kill: bool = False, *, reset_connections: bool = True) -> Iterator[None]:
    """Redis is stopped (or killed) inside the block and always running again after it."""
    redis_stop(kill=kill)
    try:
        yield
    except BaseException:
        redis_start(reset_connections=True)
        raise
    redis_start(reset_connections=reset_connections)


def reset_redis_connections() -> None:
    """Drop this process's pooled Redis connections: the Django caches' pools (this thread's),
    the rate limiter's pool and kombu's broker pools."""
    from django.core.cache import caches

    from apps.accounts import ratelimit

    for cache in caches.all(initialized_only=True):
        client = cache.__dict__.get("_cache")  # RedisCache's client, if it was ever created
        for pool in getattr(client, "_pools", {}).values():
            pool.disconnect()
    store = ratelimit._store
    if isinstance(store, ratelimit.RedisStore):
        store.client.connection_pool.disconnect()
    reset_broker_connections()


# --- PostgreSQL -------------------------------------------------------------------------------


def _pg() -> tuple[Path, Path]:
    data, bin_dir = _required("SLUICE_PG_DATA", "SLUICE_PG_BIN")
    return Path(data), Path(bin_dir)


def _pg_ctl(*args: str, timeout: float) -> None:
    data, bin_dir = _pg()
    command = [str(bin_dir / "pg_ctl"), "-D", str(data), *args]
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root (as in scripts/services.sh)
        command = ["runuser", "-u", "postgres", "--", *command]
    # -l sends the server's own output to its log file, so nothing here keeps our pipes.
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout + 10, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}"
        )


def _pg_log() -> str:
    return str(_pg()[0] / "log")


def _refuse_inside_a_test_transaction() -> None:
    from django.db import connections

    if any(c.in_atomic_block for c in connections.all(initialized_only=True)):
        pytest.fail(
            "stopping PostgreSQL inside the test's own transaction: mark the test "
            "django_db(transaction=True)"
        )


def postgres_ping() -> bool:
    """Whether the test database accepts a new connection and a query."""
    db = settings.DATABASES["default"]
    try:
        with psycopg.connect(
            host=db["HOST"],
            port=db["PORT"],
            user=db["USER"],
            password=db.get("PASSWORD") or None,
            dbname=db["NAME"],
            connect_timeout=2,
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def drop_database_connections() -> None:
    """Close this process's (this thread's) Django database connections."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()


def _wait_postgres(reset_connections: bool) -> None:
    _deadline_loop(
        START_TIMEOUT, f"PostgreSQL did not accept connections (see {_pg_log()})", postgres_ping
    )
    if reset_connections:
        drop_database_connections()


def postgres_restart_fast(*, reset_connections: bool = True) -> None:
    """``pg_ctl restart -m fast``: every connection is cut, the server is back when this
    returns."""
    _refuse_inside_a_test_transaction()
    seconds = str(int(START_TIMEOUT))
    _pg_ctl("restart", "-m", "fast", "-w", "-t", seconds, "-l", _pg_log(), timeout=START_TIMEOUT)
    _wait_postgres(reset_connections)


def postgres_stop() -> None:
    """``pg_ctl stop -m fast``: every connection is cut; returns once the server is gone."""
    _refuse_inside_a_test_transaction()
    _pg_ctl("stop", "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT)), timeout=STOP_TIMEOUT)


def postgres_start(*, reset_connections: bool = True) -> None:
    """Start the server again (its options are in its postgresql.conf) and wait for it."""
    if not postgres_ping():
        _pg_ctl(
            "start", "-w", "-t", str(int(START_TIMEOUT)), "-l", _pg_log(), timeout=START_TIMEOUT
        )
    _wait_postgres(reset_connections)


@contextlib.contextmanager
def postgres_down(*, reset_connections: bool = True) -> Iterator[None]:
    """PostgreSQL is stopped inside the block and always running again after it."""
    postgres_stop()
    try:
        yield
    except BaseException:
        postgres_start(reset_connections=True)
        raise
    postgres_start(reset_connections=reset_connections)


# --- A web process's request cycle ------------------------------------------------------------


class WebProcessClient(APIClient):
    """REST framework's test client with a real web server's request cycle.

    Django's test client disconnects ``close_old_connections`` from ``request_started`` and
    ``request_finished`` (a test's own transaction must survive its requests), and re-raises
    any exception a view let out even when a handler answered it. A web process under
    gunicorn does neither: at the start and end of each request it closes a connection that
    failed or failed its health check, so the next query reconnects. This client does what
    the server does, so that a test can show the web recovering from a restart by itself,
    and it returns the 500/503 a server would send. Only with
    ``django_db(transaction=True)``: it would close a test transaction's connection.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("raise_request_exception", False)
        super().__init__(*args, **kwargs)

    @classmethod
    def like(cls, client: APIClient) -> WebProcessClient:
        """A client sending the same credentials (the API key) as ``client``."""
        web = cls()
        web.credentials(**client._credentials)
        return web

    def request(self, **kwargs):
        close_old_connections()  # request_started, in a web server
        try:
            return super().request(**kwargs)
        finally:
            close_old_connections()  # request_finished
