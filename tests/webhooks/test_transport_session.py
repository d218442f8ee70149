"""Webhook delivery's HTTP session against real local receivers: a redirect is not followed
(the signed body and its headers never reach the Location's host), and neither environment
proxies nor ``~/.netrc`` apply."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from apps.webhooks.services import transport
from tests.support.receiver import Answer, Receiver, clean_http_environment
from tests.support.worker import wait_for

HEADERS = {"webhook-id": "msg_1", "webhook-signature": "v1,secret-derived", "x-sluice-event": "t"}


@pytest.fixture
def other() -> Iterator[Receiver]:
    """A second receiver, standing for another host (a redirect's target, or a proxy)."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    clean_http_environment(monkeypatch, tmp_path)


def post(url: str) -> transport.AttemptResult:
    return transport.http_post(url=url, body=b'{"a":1}', headers=dict(HEADERS))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_not_followed(receiver, other, status):
    receiver.then(Answer(status=status, headers={"Location": other.url("/steal")}))
    result = post(receiver.url())
    assert result.status_code == status and not result.succeeded
    assert "not followed" in (result.error or "")
    assert other.received() == []
    assert [r.path for r in receiver.received()] == ["/hook"]


def test_environment_proxies_are_ignored(receiver, other, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, other.url(""))
    result = post(receiver.url())
    assert result.succeeded
    assert other.received() == []
    assert [r.body for r in receiver.received()] == [b'{"a":1}']


def test_netrc_credentials_are_not_sent(receiver, tmp_path):
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login someone password hunter2\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert post(receiver.url()).succeeded
    (request,) = receiver.received()
    assert "authorization" not in request.headers
    assert request.headers["webhook-signature"] == HEADERS["webhook-signature"]


def test_the_watchdog_cuts_each_trickling_attempt_at_its_own_deadline(receiver, settings):
    """One watchdog thread for every attempt: two receivers trickling header lines forever,
    started 0.4 s apart, are each cut at connect + read timeouts from their own start, while a
    quick attempt in between is answered and its connection left alone."""
    settings.WEBHOOK_CONNECT_TIMEOUT = 0.4
    settings.WEBHOOK_READ_TIMEOUT = 0.4  # the whole answer within 0.8 s
    receiver.routes["/slow-1"] = Answer(trickle=0.1)
    receiver.routes["/slow-2"] = Answer(trickle=0.1)
    results: dict[str, tuple[transport.AttemptResult, float]] = {}

    def send(path: str) -> None:
        started = time.monotonic()
        result = post(receiver.url(path))
        results[path] = (result, time.monotonic() - started)

    threads = []
    for path, pause in (("/slow-1", 0.4), ("/quick", 0.0), ("/slow-2", 0.0)):
        thread = threading.Thread(target=send, args=(path,))
        thread.start()
        threads.append(thread)
        time.sleep(pause)
    for thread in threads:
        thread.join(10)
    assert results["/quick"][0].succeeded
    for path in ("/slow-1", "/slow-2"):
        result, took = results[path]
        assert result.status_code is None, path
        assert result.error == "Timeout: no complete answer within 0.8 s", path
        assert 0.75 <= took < 5, (path, took)  # cut off, not left to trickle for 30 s
    # The receiver sees the cut at its next write (every 0.1 s).
    wait_for(lambda: len(receiver.hung_up) == 2, timeout=5, message="a connection was not cut")
    assert sorted(receiver.hung_up) == ["/slow-1", "/slow-2"]
    assert transport.watchdog.pending() == 0
    # Later attempts on this thread's session are not cut by a stale entry.
    time.sleep(0.9)
    assert post(receiver.url()).succeeded and post(receiver.url()).succeeded
