"""A real Celery worker in a subprocess, on the real broker, against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class WorkerProcess:
    """``celery worker`` as its own process; ``env`` overrides settings for it only."""

    def __init__(
        self,
        *,
        queues: str = "enrichment,webhooks,maintenance",
        pool: str = "threads",
        concurrency: int = 4,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.queues = queues
        self.pool = pool
        self.concurrency = concurrency
        self.env = env or {}
        self.log_path = (
            log_path or Path(os.environ.get("SLUICE_VAR_DIR", "/tmp")) / f"{self.name}.log"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        env = os.environ | {"DATABASE_URL": database_url()} | self.env
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                self.queues,
                "-P",
                self.pool,
                "-c",
                str(self.concurrency),
                "-n",
                self.name,
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        from config.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.log_path}")
            try:
                if app.control.ping(destination=[self.name], timeout=0.5):
                    return self
            except app.connection().connection_errors:
                reset_broker_connections()
        self.stop()
        raise RuntimeError(f"worker did not answer ping in {timeout}s; see {self.log_path}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crashed or OOM-killed worker would die."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()


def reset_broker_connections() -> None:
    """Drop this process's pooled broker connections (stale after a broker restart)."""
    from kombu import pools

    from config.celery import app

    pools.reset()  # closes and forgets kombu's global connection and producer pools
    app._after_fork()  # and Celery's references to them, as after a fork


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, message: str = ""):
    """Poll ``predicate`` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(interval)
