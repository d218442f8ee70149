"""The embedded broker (kombu's filesystem transport) survives processes starting together."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor

from config.celery import _EXCHANGES, _exchange_tables_create


def test_exchange_tables_exist_complete_before_any_queue_binds(tmp_path):
    # kombu creates a missing table with open("wb") and locks it only afterwards: a process
    # starting beside it read the empty file and died. Created up front, whole, they are
    # only ever updated under kombu's lock.
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_exchange_tables_create, [tmp_path] * 8))
    for name in _EXCHANGES:
        assert json.loads((tmp_path / f"{name}.exchange").read_text()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.exchange" for n in _EXCHANGES)
