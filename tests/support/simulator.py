"""The provider simulator as its own process on a free loopback port, as in production."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.worker import ROOT, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimulatorProcess:
    """``manage.py provider_simulator``; ``env`` sets latency, hit and error rates."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> SimulatorProcess:
        log = Path(os.environ.get("SLUICE_VAR_DIR", "/tmp")) / f"simulator-{self.port}.log"
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "provider_simulator", "--port", str(self.port)],
            cwd=ROOT,
            env=os.environ | self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            try:
                return requests.get(f"{self.url}/healthz", timeout=0.5).ok
            except requests.ConnectionError:
                return False

        wait_for(up, timeout=20, message=f"simulator did not start; see {log}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()
