"""Helpers for tests of credit holds and charging: a counting Hunter, and the ledger check."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import parse_qs, urlparse

from apps.accounts.models import Account
from apps.accounts.selectors import ledger_mismatches, ledger_sum
from tests.support.vendors import hunter_body


def assert_settled(account: Account) -> Account:
    """Nothing held any more, and the balance is still the ledger's sum, never negative."""
    account.refresh_from_db()
    assert account.held == 0
    assert account.credits >= 0
    assert account.credits == ledger_sum(account=account)
    assert ledger_mismatches() == []
    return account


class CountingHunter:
    """Hunter's Email Finder: a hit for first names in ``hits`` (all when None); counts calls
    and the most calls in flight at once."""

    def __init__(self, *, hits: set[str] | None = None, delay: float = 0.0) -> None:
        self.hits = hits
        self.delay = delay
        self.calls = 0
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, request):
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.delay)
            name = parse_qs(urlparse(request.url).query).get("first_name", [""])[0]
            found = self.hits is None or name in self.hits
            body = hunter_body() if found else hunter_body(email=None, score=None, status=None)
            return 200, {}, json.dumps(body)
        finally:
            with self._lock:
                self.in_flight -= 1
