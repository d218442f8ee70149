"""Fixtures for webhook tests: a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.support.receiver import Receiver


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()
