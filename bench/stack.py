"""The production-shaped stack for the benchmarks: processes started exactly from the Procfile.

Shared by bench/webhooks.py and bench/faults.py (run by their .sh, which provide PostgreSQL,
Redis, ``SLUICE_VAR_DIR`` and the production settings).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def procfile_command(name: str) -> list[str]:
    """The Procfile's ``name`` line as argv: ``${VAR:-default}`` from the environment, and the
    program (``celery``, ``gunicorn``, ``python``) from the project's virtualenv."""
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}:")
    )
    command = re.sub(
        r"\$\{(\w+):-([^}]*)\}",
        lambda m: os.environ.get(m.group(1), m.group(2)),
        line.split(":", 1)[1].strip(),
    )
    argv = shlex.split(command)
    return [str(ROOT / ".venv/bin" / argv[0]), *argv[1:]]


def start(name: str) -> subprocess.Popen:
    """Start the Procfile's ``name`` process; its output goes to ``$SLUICE_VAR_DIR/<name>.log``
    (appended to, so a restarted process's log follows the one it replaces)."""
    log = open(Path(os.environ["SLUICE_VAR_DIR"]) / f"{name}.log", "ab")  # noqa: SIM115
    try:
        return subprocess.Popen(procfile_command(name), cwd=ROOT, stdout=log, stderr=log)
    finally:
        log.close()  # the child has its own copy of the descriptor


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it returns something truthy; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
