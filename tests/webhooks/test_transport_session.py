"""Webhook delivery's HTTP session against real local receivers: a redirect is not followed
(the signed body and its headers never reach the Location's host), and neither environment
proxies nor ``~/.netrc`` apply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.webhooks.services import transport
from tests.support.receiver import Answer, Receiver, clean_http_environment

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
