"""SPEC §9: no accepted contact is lost to a killed worker, a broker restart or a database
blip, and none is charged twice. Real worker processes, real Redis, real PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time

import pytest
from django.db import connection
from django.db.models import Count, Q

from apps.accounts.models import LedgerEntry
from apps.enrichment import services
from apps.enrichment.models import Contact
from tests.support.simulator import SimulatorProcess
from tests.support.worker import reset_broker_connections, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SLOW = {"SIMULATOR_LATENCY_MS": "300", "SIMULATOR_ERROR_RATE": "0"}


@pytest.fixture
def slow_simulator():
    simulator = SimulatorProcess(SLOW).start()
    yield simulator
    simulator.stop()


def _worker_env(simulator: SimulatorProcess) -> dict[str, str]:
    # Short leases so that the work a dead worker held becomes reclaimable within the test.
    return {"PROVIDER_SIMULATOR_URL": simulator.url, "ENRICHMENT_LEASE_SECONDS": "3"}


def _submit(client, n: int = 20) -> list[str]:
    contacts = [
        {
            "first_name": f"Grace{i}",
            "last_name": "Hopper",
            "company_name": "Navy",
            "domain": f"navy{i}.mil.example",
            "custom": {"i": i},
        }
        for i in range(n)
    ]
    response = client.post(
        "/api/v1/enrich/bulk",
        json.dumps({"contacts": contacts, "enrichment_type": ["email"]}),
        content_type="application/json",
    )
    assert response.status_code == 202, response.json()
    return [c["enrichment_id"] for c in response.json()["contacts"]]


def _reap_until_all_finished(ids: list[str], settings, timeout: float = 90) -> None:
    """What beat does every 30 s, done every second so the test is quick."""
    settings.ENRICHMENT_STUCK_AFTER_SECONDS = 0
    last = [0.0]

    def done() -> bool:
        if time.monotonic() - last[0] > 1:
            services.contacts_reap()
            last[0] = time.monotonic()
        return not Contact.objects.filter(pk__in=ids, status=Contact.PENDING).exists()

    wait_for(done, timeout=timeout, interval=0.2, message="contacts left pending")


def _assert_charged_once(ids: list[str]) -> None:
    verified = Contact.objects.filter(pk__in=ids, result_status=Contact.VERIFIED).count()
    charges = LedgerEntry.objects.filter(contact_id__in=ids, entry_type=LedgerEntry.CHARGE)
    assert charges.count() == verified
    assert not charges.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    total = sum(Contact.objects.filter(pk__in=ids).values_list("credits_charged", flat=True))
    assert -sum(charges.values_list("amount", flat=True)) == total


def test_worker_killed_mid_task_loses_nothing(live_api, worker_factory, slow_simulator, settings):
    env = _worker_env(slow_simulator)
    doomed = worker_factory(env=env, queues="enrichment")
    ids = _submit(live_api)
    wait_for(
        lambda: Contact.objects.filter(pk__in=ids, run_count__gte=1).exists(),
        timeout=30,
        message="the worker never claimed a contact",
    )
    doomed.kill()  # SIGKILL: no graceful shutdown, the message stays unacknowledged
    assert Contact.objects.filter(pk__in=ids, status=Contact.PENDING).exists(), (
        "the worker finished everything before it was killed; the test proved nothing"
    )
    worker_factory(env=env, queues="enrichment")
    _reap_until_all_finished(ids, settings)
    _assert_charged_once(ids)


def test_broker_restart_loses_no_contact(
    live_api, worker_factory, slow_simulator, settings, redis_client
):
    ids = _submit(live_api)  # published, but no worker is consuming yet
    assert redis_client.llen("enrichment") == 1
    config = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in redis_client.config_get("*").items()
    }
    port, pidfile, folder = config["port"], config["pidfile"], config["dir"]
    with contextlib.suppress(Exception):
        redis_client.shutdown(nosave=True)
    # Same port, no persistence: the restarted broker has lost every message.
    subprocess.run(
        [
            "redis-server",
            "--port",
            port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--dir",
            folder,
            "--pidfile",
            pidfile,
            "--daemonize",
            "yes",
        ],
        check=True,
        capture_output=True,
    )
    # Connections pooled before the restart are dead; drop them rather than trip over them.
    redis_client.connection_pool.disconnect()
    reset_broker_connections()
    wait_for(lambda: _ping(redis_client), timeout=10, message="redis did not come back")
    assert redis_client.llen("enrichment") == 0
    worker_factory(env=_worker_env(slow_simulator), queues="enrichment")
    _reap_until_all_finished(ids, settings)
    _assert_charged_once(ids)


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_database_blip_mid_task_loses_nothing(live_api, worker_factory, slow_simulator, settings):
    worker_factory(env=_worker_env(slow_simulator), queues="enrichment")
    ids = _submit(live_api)
    wait_for(
        lambda: Contact.objects.filter(pk__in=ids, run_count__gte=1).exists(),
        timeout=30,
        message="the worker never claimed a contact",
    )

    def cut() -> int:
        with connection.cursor() as cursor:
            # Cut every other session to this database: the worker's connections die
            # mid-task. Its task thread has returned by now (the waterfalls run in the pool),
            # so this waits for the lease keeper's renewal or the finisher to hold one.
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    wait_for(cut, timeout=10, interval=0.05, message="the worker held no connection")
    assert Contact.objects.filter(pk__in=ids, status=Contact.PENDING).exists(), (
        "everything finished before the blip; the test proved nothing"
    )
    _reap_until_all_finished(ids, settings)
    _assert_charged_once(ids)
    assert (
        not Contact.objects.filter(pk__in=ids)
        .filter(Q(result__isnull=True) | Q(finished_at__isnull=True))
        .exists()
    )
