"""Single contacts committed close together share one message (services/publishing.py)."""

from __future__ import annotations

import os
import time

import pytest

from apps.enrichment import services
from apps.enrichment.models import Contact
from apps.enrichment.services import publishing as publisher
from tests.support.api import EMAIL_CONTACT, make_client
from tests.support.queues import queued_contact_ids

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(redis_client, count: int, timeout: float = 5) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        messages = queued_contact_ids(redis_client)
        if sum(map(len, messages)) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.02)


def test_requests_within_the_linger_share_a_message(settings, redis_client):
    settings.ENRICHMENT_PUBLISH_LINGER_MS = 300
    api = make_client()
    ids = []
    for _ in range(5):
        response = api.post("/api/v1/enrich", EMAIL_CONTACT, format="json")
        assert response.status_code == 202
        ids.append(response.json()["enrichment_id"])

    messages = _wait_for(redis_client, 5)
    assert sorted(i for message in messages for i in message) == sorted(ids)
    assert len(messages) < 5  # five requests well inside 300 ms: coalesced


def test_a_publish_that_fails_is_a_202_and_the_reaper_recovers(
    settings, redis_client, monkeypatch, caplog
):
    def broker_down(_ids):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(publisher, "_publish", broker_down)
    settings.ENRICHMENT_STUCK_AFTER_SECONDS = 0
    api = make_client()
    response = api.post("/api/v1/enrich", EMAIL_CONTACT, format="json")
    # The row is committed: failing the request would only make the client send it again.
    assert response.status_code == 202
    contact_id = response.json()["enrichment_id"]
    assert "the reaper will re-publish them" in caplog.text
    assert queued_contact_ids(redis_client) == []
    assert Contact.objects.get(pk=contact_id).status == Contact.PENDING

    monkeypatch.undo()
    assert services.contacts_reap() == 1
    assert queued_contact_ids(redis_client) == [[contact_id]]


def test_a_forked_child_starts_empty(settings):
    settings.ENRICHMENT_PUBLISH_LINGER_MS = 60_000  # its thread will not flush in this test
    coalescer = publisher.Coalescer()
    coalescer.add(["a-parent-id"])
    pid = os.fork()
    if pid == 0:  # the child must neither publish nor drop the parent's ids
        os._exit(0 if coalescer._ids == [] and coalescer._thread is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert coalescer._ids == ["a-parent-id"]
