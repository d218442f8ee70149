"""The admin dashboard: figures from aggregates, charts as inline SVG, a constant query count."""

from __future__ import annotations

import re
import sqlite3
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.enrichment.models import Contact, ProviderAttempt
from apps.ops import selectors
from apps.ops.percentile import SQLITE_FUNCTION, _SqlitePercentile, percentile_cont
from apps.webhooks.models import Delivery, DeliveryAttempt
from apps.webhooks.services import endpoint_deactivate
from tests.factories import AccountFactory, ContactFactory, leased_contact
from tests.support.querycount import page_queries
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db

URL = "/admin/dashboard/"


def _traffic(n: int, *, account=None) -> None:
    """n finished contacts (alternating outcomes), each with a provider attempt, and n
    webhook deliveries with one attempt each (every third one failed)."""
    account = account or AccountFactory()
    outcomes = [Contact.VERIFIED, Contact.NOT_FOUND, Contact.FAILED, Contact.NO_CREDITS]
    endpoint = EndpointFactory(account=account, url=f"https://hooks.example/{uuid.uuid4()}")
    for i in range(n):
        contact = ContactFactory(
            account=account,
            status=Contact.FINISHED,
            result_status=outcomes[i % 4],
            finished_at=timezone.now(),
        )
        ProviderAttempt.objects.create(
            contact=contact,
            provider="sandbox",
            kind="email",
            outcome="hit" if i % 4 == 0 else "miss",
            duration_ms=10 * (i + 1),
        )
        delivery = DeliveryFactory(endpoint=endpoint, account=account, status=Delivery.SUCCEEDED)
        DeliveryAttempt.objects.create(
            delivery=delivery, at=timezone.now(), status_code=200, succeeded=i % 3 != 0
        )


def test_dashboard_is_linked_from_the_admin_index(admin_client):
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{URL}"' in body


def test_dashboard_requires_staff(client, django_user_model):
    assert client.get(URL).status_code == 302  # to the admin login
    user = django_user_model.objects.create_user("nobody", password="pw-12345-long")
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_dashboard_shows_outcomes_providers_webhooks_endpoints_and_queues(
    admin_client, redis_client
):
    _traffic(8)
    disabled = EndpointFactory(url="https://dead.example/hook")
    endpoint_deactivate(endpoint=disabled, reason="HTTP 410 Gone")
    ContactFactory()  # still pending
    redis_client.rpush("enrichment", "m1", "m2", "m3")
    redis_client.rpush("webhooks", "m1")

    response = admin_client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    ctx = response.context
    assert ctx["contacts_total"] == 9
    totals = {label: n for label, _, n in ctx["totals"]}
    assert totals == {"verified": 2, "not found": 2, "no credits": 2, "failed": 2, "pending": 1}
    (sandbox,) = ctx["providers"]
    assert (sandbox["stats"].calls, sandbox["stats"].hits) == (8, 2)
    assert sandbox["hit_rate"] == "25.0 %"
    # PERCENTILE_CONT(0.95) of 10, 20, ..., 80 ms
    assert sandbox["stats"].p95_ms == pytest.approx(
        percentile_cont([10.0 * i for i in range(1, 9)], 0.95)
    )
    assert ctx["webhooks"].attempts == 8
    assert ctx["webhook_success_rate"] == "62.5 %"  # 5 of 8 (every third failed)
    assert ctx["disabled_count"] == 1
    assert "dead.example" in body and "HTTP 410 Gone" in body
    assert ctx["queues"].depths == {"enrichment": 3, "webhooks": 1, "maintenance": 0}
    # Charts, not only tables: inline SVG, one per section, with no external resources.
    for section in (
        "chart-outcomes",
        "chart-hit-rate",
        "chart-latency",
        "chart-webhooks",
        "queues",
    ):
        block = body.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
        assert "<svg" in block and "<rect" in block, section
    assert not re.search(r'(src|href)="https?://', body)


def test_dashboard_query_count_is_constant(admin_client):
    account = AccountFactory()
    _traffic(5, account=account)
    few = page_queries(admin_client, URL)
    _traffic(45, account=account)
    many = page_queries(admin_client, URL)
    assert few == many


def test_outcomes_are_bucketed_per_hour_over_24_hours():
    now = timezone.now()
    old = ContactFactory()
    Contact.objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=3))
    ContactFactory()
    Contact.objects.filter(pk=ContactFactory().pk).update(created_at=now - timedelta(hours=30))
    buckets = selectors.contact_outcomes_by_hour(now=now)
    assert len(buckets) == 24
    assert sum(b.total for b in buckets) == 2
    assert buckets[-1].counts["pending"] == 1
    three_ago = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    assert next(b for b in buckets if b.hour == three_ago).counts["pending"] == 1


def test_provider_stats_leave_out_skips_and_cache_and_run_one_query():
    contact = ContactFactory()
    for outcome, ms in [("hit", 100), ("error", 900), ("skipped", 0), ("cache", 0), ("miss", 200)]:
        ProviderAttempt.objects.create(
            contact=contact, provider="pdl", kind="phone", outcome=outcome, duration_ms=ms
        )
    with CaptureQueriesContext(connection) as ctx:
        (stats,) = selectors.provider_stats(since=timezone.now() - timedelta(hours=1))
    assert len(ctx.captured_queries) == 1
    assert (stats.calls, stats.hits, stats.misses, stats.errors) == (3, 1, 1, 1)
    assert stats.p95_ms == pytest.approx(percentile_cont([100, 200, 900], 0.95))
    assert stats.hit_rate == pytest.approx(1 / 3)


def test_filesystem_broker_depth_counts_message_files_per_queue(tmp_path):
    for name in ("1_a.enrichment.msg", "2_b.enrichment.msg", "3_c.maintenance.msg", "x.tmp"):
        (tmp_path / name).write_text("{}")
    depths = selectors._filesystem_depths(tmp_path)
    assert depths.depths == {"enrichment": 2, "webhooks": 0, "maintenance": 1}
    assert selectors._filesystem_depths(tmp_path / "missing").depths["enrichment"] == 0


def test_unreachable_redis_broker_is_reported_not_raised(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    depths = selectors.queue_depths()
    assert depths.error
    assert depths.depths == {"enrichment": None, "webhooks": None, "maintenance": None}


def test_sqlite_percentile_matches_postgresql():
    """The embedded default (SQLite) gets the same p95 through a registered aggregate."""
    values = [5, 1, 9, 3, 7, 120, 44]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY v) FROM unnest(%s::int[]) v",
            [values],
        )
        expected = cursor.fetchone()[0]
    db = sqlite3.connect(":memory:")
    db.create_aggregate(SQLITE_FUNCTION, 2, _SqlitePercentile)
    db.execute("CREATE TABLE t (v INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    (got,) = db.execute(f"SELECT {SQLITE_FUNCTION}(v, 0.95) FROM t").fetchone()
    assert got == pytest.approx(expected)
    assert percentile_cont(values, 0.95) == pytest.approx(expected)
    assert percentile_cont([], 0.95) is None


def test_provider_stats_query_runs_on_sqlite_too():
    """The embedded default: the same Django query, compiled for SQLite, gives the same p95."""
    from django.db.backends.sqlite3.base import DatabaseWrapper

    from apps.ops.percentile import sqlite_register_percentile

    sqlite = DatabaseWrapper({**connection.settings_dict, "NAME": ":memory:"}, alias="sqlite")
    sqlite.settings_dict.update(ENGINE="django.db.backends.sqlite3", OPTIONS={})
    sqlite.ensure_connection()
    sqlite_register_percentile(sender=None, connection=sqlite)
    with sqlite.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE enrichment_providerattempt (id INTEGER PRIMARY KEY, provider TEXT, "
            "outcome TEXT, duration_ms INTEGER, created_at TEXT)"
        )
        rows = [
            ("pdl", "hit", 100),
            ("pdl", "miss", 300),
            ("pdl", "error", 900),
            ("pdl", "skipped", 0),
        ]
        for provider, outcome, ms in rows:
            cursor.execute(
                "INSERT INTO enrichment_providerattempt"
                " (provider, outcome, duration_ms, created_at) VALUES (%s, %s, %s, %s)",
                [provider, outcome, ms, "2030-01-01 00:00:00"],
            )
        query = selectors.provider_attempt_stats(since=timezone.now() - timedelta(days=36500))
        sql, params = query.query.get_compiler(connection=sqlite).as_sql()
        assert "SLUICE_PERCENTILE" in sql
        cursor.execute(sql, params)
        row = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
    sqlite.close()
    assert (row["calls"], row["hits"], row["errors"]) == (3, 1, 1)
    assert row["p95_ms"] == pytest.approx(percentile_cont([100, 300, 900], 0.95))


def test_dashboard_needs_permission_to_view_enrichments_not_only_staff_status(
    client, django_user_model
):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("bare", password="pw-12345-long", is_staff=True)
    client.force_login(user)
    assert client.get(URL).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_contact"))
    user = django_user_model.objects.get(pk=user.pk)  # drop the cached permissions
    client.force_login(user)
    assert client.get(URL).status_code == 200


def test_dashboard_link_is_shown_only_to_those_who_may_open_it(client, django_user_model):
    user = django_user_model.objects.create_user("bare2", password="pw-12345-long", is_staff=True)
    client.force_login(user)
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert f'href="{URL}"' not in index.content.decode()


# --- Recovery: work whose worker is gone ------------------------------------------------------


def _recovery_rows() -> dict[str, set[str]]:
    """Contacts and deliveries in each recovery state; returns the ids each figure counts."""
    now = timezone.now()
    live = leased_contact(lease=10)
    orphaned = leased_contact(lease=-1)
    orphaned_rerun = leased_contact(lease=-2, runs=3)
    stuck_live = leased_contact(lease=10, age=600, runs=2)
    stuck_unclaimed = leased_contact(lease=None, age=900)
    rerun_done = leased_contact(
        lease=-600, runs=2, status=Contact.FINISHED, result_status=Contact.VERIFIED
    )
    leased_contact(lease=-600, runs=4, age=30 * 3600, status=Contact.FINISHED)  # re-run, but old
    lost = DeliveryFactory(claimed_until=now - timedelta(seconds=5))
    DeliveryFactory(claimed_until=now + timedelta(seconds=10))  # being sent
    DeliveryFactory(status=Delivery.SUCCEEDED, claimed_until=now - timedelta(hours=1))
    ids = lambda *rows: {str(r.pk) for r in rows}  # noqa: E731
    return {
        "pending": ids(live, orphaned, orphaned_rerun, stuck_live, stuck_unclaimed),
        "orphaned": ids(orphaned, orphaned_rerun),
        "stuck": ids(stuck_live, stuck_unclaimed),
        "rerun": ids(orphaned_rerun, stuck_live, rerun_done),
        "deliveries": ids(lost),
    }


def test_dashboard_shows_orphaned_rerun_and_stuck_work_linked_to_the_lists(admin_client, settings):
    settings.ENRICHMENT_STUCK_AFTER_SECONDS = 120
    expected = _recovery_rows()
    response = admin_client.get(URL)
    assert response.status_code == 200
    recovery = response.context["recovery"]
    assert recovery == selectors.Recovery(
        contacts_pending=5,
        contacts_orphaned=2,
        contacts_stuck=2,
        contacts_rerun=3,
        deliveries_orphaned=1,
    )
    block = response.content.decode().split('id="recovery"', 1)[1].split("</section>", 1)[0]
    links = {}
    for kpi, n in (
        ("contacts-orphaned", 2),
        ("contacts-rerun", 3),
        ("contacts-stuck", 2),
        ("deliveries-orphaned", 1),
        ("contacts-pending", 5),
    ):
        value = block.split(f'id="kpi-{kpi}">', 1)[1].split("</div>", 1)[0]
        assert re.sub(r"<[^>]+>", "", value) == str(n), kpi
        link = re.search(r'href="([^"]+)"', value)
        if link:
            links[kpi] = link.group(1).replace("&amp;", "&")
    assert "within 5 s" in block and "more than 120 s" in block

    def listed(url: str) -> set[str]:
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert "?e=1" not in page.wsgi_request.get_full_path()
        return {str(row.pk) for row in page.context["cl"].result_list}

    assert listed(links["contacts-orphaned"]) == expected["orphaned"]
    assert listed(links["contacts-stuck"]) == expected["stuck"]
    assert listed(links["contacts-rerun"]) == expected["rerun"]
    assert listed(links["deliveries-orphaned"]) == expected["deliveries"]


def test_dashboard_shows_no_recovery_work_as_zeros(admin_client):
    _traffic(3)
    recovery = admin_client.get(URL).context["recovery"]
    assert recovery == selectors.Recovery(0, 0, 0, 0, 0)


def test_recovery_figures_are_three_queries_at_any_volume():
    now = timezone.now()
    _recovery_rows()
    with CaptureQueriesContext(connection) as ctx:
        selectors.recovery(now=now, since=now - timedelta(hours=24))
    assert len(ctx.captured_queries) == 3
    for _ in range(10):
        _recovery_rows()
    with CaptureQueriesContext(connection) as ctx:
        figures = selectors.recovery(now=now, since=now - timedelta(hours=24))
    assert len(ctx.captured_queries) == 3
    assert figures.contacts_orphaned == 22 and figures.deliveries_orphaned == 11


def test_dashboard_query_count_does_not_grow_with_recovery_work(admin_client):
    _recovery_rows()
    few = page_queries(admin_client, URL)
    for _ in range(15):
        _recovery_rows()
    assert page_queries(admin_client, URL) == few


def test_dashboard_recovery_is_shown_to_support_staff_too(client, django_user_model):
    from django.contrib.auth.models import Group

    from apps.ops.services import SUPPORT_GROUP

    user = django_user_model.objects.create_user("desk", password="pw-12345-long", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    client.force_login(user)
    leased_contact(lease=-1)
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["recovery"].contacts_orphaned == 1
    link = reverse("admin:enrichment_contact_changelist") + "?lease=lapsed"
    assert f'href="{link}"' in response.content.decode()
    assert client.get(link).status_code == 200
