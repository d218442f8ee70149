"""The rest of the production stack as real processes: ``celery beat`` and gunicorn.

With ``WorkerProcess`` (the ``worker`` and ``webhooks`` lines) and ``SimulatorProcess`` they
are the ``Procfile``'s processes, started with its flags against the test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from tests.support.simulator import free_port
from tests.support.worker import ROOT, database_url, wait_for


class _Process:
    name = "process"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(
            tempfile.mkstemp(
                prefix=f"{self.name}-", suffix=".log", dir=os.environ.get("SLUICE_VAR_DIR")
            )[1]
        )

    def _spawn(self, args: list[str]) -> None:
        env = os.environ | {"DATABASE_URL": database_url()} | self.env
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: gunicorn's workers die with it
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()


class BeatProcess(_Process):
    """``celery beat`` as the Procfile runs it: the reaper and the webhook sweep on schedule."""

    name = "beat"

    def start(self) -> BeatProcess:
        schedule = self.log_path.with_suffix(".schedule")
        self._spawn(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "INFO",
                "--schedule",
                str(schedule),
            ]
        )
        wait_for(
            lambda: "beat: Starting" in self.log() or not self.alive(),
            timeout=30,
            message=f"beat did not start; see {self.log_path}",
        )
        assert self.alive(), f"beat exited; see {self.log_path}"
        return self


class WebProcess(_Process):
    """gunicorn serving the API, as the Procfile's ``web`` line, on a free loopback port."""

    name = "web"

    def start(self) -> WebProcess:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._spawn(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--limit-request-line",
                "8190",
                "--log-level",
                "warning",
            ]
        )

        def up() -> bool:
            if not self.alive():
                return True
            try:
                return requests.get(f"{self.url}/healthz", timeout=0.5).ok
            except requests.RequestException:
                return False

        wait_for(up, timeout=30, message=f"web did not start; see {self.log_path}")
        assert self.alive(), f"web exited; see {self.log_path}"
        return self
