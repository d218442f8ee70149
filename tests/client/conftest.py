"""Fixtures for the client and CLI tests: the real API (Django's live server, in this
process, on the test PostgreSQL), real Celery workers, keys for it, the `sluice` command."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.api import make_client
from tests.support.receiver import Receiver
from tests.support.sluice_cli import SLUICE


@pytest.fixture
def account_key(transactional_db):
    """A sandbox key on the pro plan (bulks of 100, 200 requests a minute): (client, raw)."""
    api = make_client()
    return api, api.key.raw_key


@pytest.fixture
def sluice_env(live_server, account_key) -> dict[str, str]:
    """The environment the `sluice` command reads its server and key from."""
    return os.environ | {"SLUICE_BASE_URL": live_server.url, "SLUICE_API_KEY": account_key[1]}


@pytest.fixture
def run_sluice(sluice_env):
    def run(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SLUICE), *args],
            env=sluice_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    run.env = sluice_env
    return run


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()
