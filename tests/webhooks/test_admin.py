"""Admin for webhook endpoints, deliveries and events: actions through the services, no secrets."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from apps.webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event
from apps.webhooks.services import endpoint_deactivate
from tests.support.querycount import MAX_CHANGELIST_QUERIES, page_queries
from tests.webhooks.factories import DeliveryFactory, EndpointFactory, EventFactory

pytestmark = pytest.mark.django_db


def _deliveries(n: int) -> None:
    endpoint = EndpointFactory()
    for _ in range(n):
        delivery = DeliveryFactory(endpoint=endpoint, status=Delivery.FAILED, attempt_count=1)
        DeliveryAttempt.objects.create(
            delivery=delivery, at=timezone.now(), status_code=500, error="HTTP 500"
        )


def _events(n: int) -> None:
    endpoint = EndpointFactory()
    for _ in range(n):
        DeliveryFactory(event=EventFactory(account=endpoint.account), endpoint=endpoint)


@pytest.mark.parametrize(
    ("url_name", "make"),
    [
        ("admin:webhooks_endpoint_changelist", lambda n: EndpointFactory.create_batch(n)),
        ("admin:webhooks_delivery_changelist", _deliveries),
        ("admin:webhooks_event_changelist", _events),
        ("admin:webhooks_deliveryattempt_changelist", _deliveries),
    ],
)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, url_name, make):
    url = reverse(url_name)
    make(5)
    few = page_queries(admin_client, url)
    make(45)
    many = page_queries(admin_client, url)
    assert few == many
    assert many <= MAX_CHANGELIST_QUERIES


def test_endpoint_pages_show_streak_and_state_but_never_the_secret(admin_client):
    endpoint = EndpointFactory(url="https://hooks.example/sluice", consecutive_failures=7)
    endpoint_deactivate(endpoint=endpoint, reason="HTTP 410 Gone")
    endpoint.refresh_from_db()
    listing = admin_client.get(reverse("admin:webhooks_endpoint_changelist")).content.decode()
    assert "https://hooks.example/sluice" in listing
    assert "HTTP 410 Gone" in listing
    assert 'class="field-consecutive_failures">7<' in listing
    page = admin_client.get(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]))
    for body in (listing, page.content.decode()):
        assert endpoint.secret not in body


def test_search_endpoints_by_url_and_account(admin_client):
    wanted = EndpointFactory(url="https://crm.example/hook", account__name="Acme Corp")
    other = EndpointFactory(url="https://other.example/hook")
    url = reverse("admin:webhooks_endpoint_changelist")
    for term in ("crm.example", "Acme Corp", str(wanted.account_id)):
        listed = {e.pk for e in admin_client.get(url, {"q": term}).context["cl"].result_list}
        assert listed == {wanted.pk}, term
    assert other.pk not in listed


def test_disable_then_enable_with_replay_goes_through_the_services(
    admin_client, redis_client, django_capture_on_commit_callbacks
):
    endpoint = EndpointFactory()
    pending = DeliveryFactory(endpoint=endpoint)
    url = reverse("admin:webhooks_endpoint_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"action": "disable", ACTION_CHECKBOX_NAME: [endpoint.pk]})
    endpoint.refresh_from_db()
    pending.refresh_from_db()
    assert not endpoint.active
    assert endpoint.disabled_reason == "Disabled by an operator (admin)."
    assert pending.status == Delivery.SKIPPED

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url,
            {"action": "enable_and_replay", ACTION_CHECKBOX_NAME: [endpoint.pk]},
            follow=True,
        )
    assert "Enabled 1 endpoint(s). 1 skipped deliveries queued again." in response.content.decode()
    endpoint.refresh_from_db()
    pending.refresh_from_db()
    assert endpoint.active and endpoint.disabled_at is None and endpoint.consecutive_failures == 0
    assert pending.status == Delivery.PENDING
    assert redis_client.llen("webhooks") == 1


def test_enable_reports_a_duplicate_active_endpoint(admin_client):
    endpoint = EndpointFactory(url="https://dup.example/hook")
    endpoint_deactivate(endpoint=endpoint, reason="test")
    EndpointFactory(url="https://dup.example/hook", account=endpoint.account)
    response = admin_client.post(
        reverse("admin:webhooks_endpoint_changelist"),
        {"action": "enable", ACTION_CHECKBOX_NAME: [endpoint.pk]},
        follow=True,
    )
    assert "Enabled 0 endpoint(s)." in response.content.decode()
    endpoint.refresh_from_db()
    assert not endpoint.active


def test_delivery_page_shows_attempts_and_retry_requeues_it(
    admin_client, redis_client, django_capture_on_commit_callbacks
):
    delivery = DeliveryFactory(status=Delivery.FAILED, attempt_count=1, next_attempt_at=None)
    DeliveryAttempt.objects.create(
        delivery=delivery, at=timezone.now(), status_code=502, response_body="bad gateway"
    )
    page = admin_client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk]))
    assert "bad gateway" in page.content.decode()
    assert "502" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:webhooks_delivery_changelist"),
            {"action": "retry", ACTION_CHECKBOX_NAME: [delivery.pk]},
        )
    delivery.refresh_from_db()
    assert delivery.status == Delivery.PENDING
    assert delivery.next_attempt_at is not None
    assert redis_client.llen("webhooks") == 1


def test_retry_to_a_disabled_endpoint_is_refused_with_a_message(admin_client, redis_client):
    delivery = DeliveryFactory(status=Delivery.FAILED)
    endpoint_deactivate(endpoint=delivery.endpoint, reason="test")
    response = admin_client.post(
        reverse("admin:webhooks_delivery_changelist"),
        {"action": "retry", ACTION_CHECKBOX_NAME: [delivery.pk]},
        follow=True,
    )
    assert "enable it first" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.FAILED
    assert redis_client.llen("webhooks") == 0


def test_events_are_read_only_and_searchable_by_id(admin_client):
    event = EventFactory()
    EventFactory()
    url = reverse("admin:webhooks_event_changelist")
    listed = admin_client.get(url, {"q": event.id}).context["cl"].result_list
    assert [e.pk for e in listed] == [event.pk]
    assert admin_client.get(reverse("admin:webhooks_event_add")).status_code == 403
    change = reverse("admin:webhooks_event_change", args=[event.pk])
    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"type": "bulk.completed"}).status_code == 403
    assert Event.objects.get(pk=event.pk).type == Event.CONTACT_ENRICHED
    assert Endpoint.objects.count() == 0


def test_endpoint_and_event_pages_link_to_their_deliveries(admin_client):
    mine = DeliveryFactory()
    other = DeliveryFactory(endpoint__url="https://other.example/hook")
    pages = [
        reverse("admin:webhooks_endpoint_change", args=[mine.endpoint_id]),
        reverse("admin:webhooks_event_change", args=[mine.event_id]),
    ]
    for page in pages:
        body = admin_client.get(page).content.decode()
        link = re.search(r'href="(/admin/webhooks/delivery/\?[^"]+)"', body).group(1)
        listed = admin_client.get(link.replace("&amp;", "&")).context["cl"].result_list
        assert [d.pk for d in listed] == [mine.pk], page
    assert other.pk != mine.pk


def test_endpoint_and_delivery_change_forms_save_nothing(admin_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    delivery = DeliveryFactory()
    for url in (
        reverse("admin:webhooks_endpoint_change", args=[delivery.endpoint_id]),
        reverse("admin:webhooks_delivery_change", args=[delivery.pk]),
    ):
        assert 'name="_save"' not in admin_client.get(url).content.decode()
        with CaptureQueriesContext(connection) as ctx:
            admin_client.post(url, {"status": "succeeded", "active": ""})
        assert not [q for q in ctx.captured_queries if q["sql"].startswith("UPDATE")], url


def test_delivery_attempts_are_found_by_delivery_endpoint_or_account_id(admin_client):
    _deliveries(2)
    wanted, other = Delivery.objects.order_by("created_at")
    url = reverse("admin:webhooks_deliveryattempt_changelist")
    listed = admin_client.get(url, {"q": str(wanted.pk)}).context["cl"].result_list
    assert [a.delivery_id for a in listed] == [wanted.pk]
    for term in (str(wanted.endpoint_id), str(wanted.account_id)):
        listed = admin_client.get(url, {"q": term}).context["cl"].result_list
        assert {a.delivery_id for a in listed} == {wanted.pk, other.pk}, term
