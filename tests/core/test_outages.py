"""The API and /readyz while PostgreSQL or Redis is down, and after it comes back.

Real faults on the suite's own servers (tests/support/outages.py); nothing is mocked. What
each dependency's outage does to a request (docs/errors.md):

* Redis (cache, rate limiter, broker) down: the intake still answers 202 (the contact row is
  committed, its publish is logged and the reaper publishes it again), reads answer 200,
  the rate limiter lets requests through uncounted; /readyz is 503.
* PostgreSQL down: every API call answers 503 ``service_unavailable`` with Retry-After; the
  admin too; /readyz is 503. Once it is back the same process goes on, nothing restarted.
"""

from __future__ import annotations

import json
import time

import kombu
import psycopg
import pytest
import redis
from django.db import (
    IntegrityError,
    OperationalError,
    ProgrammingError,
    connection,
    connections,
    transaction,
)

from apps.core.errors import outage_dependency
from apps.enrichment import services
from apps.enrichment.models import Contact
from tests.support.api import EMAIL_CONTACT
from tests.support.outages import (
    WebProcessClient,
    postgres_down,
    postgres_restart_fast,
    redis_down,
)
from tests.support.queues import queued_contact_ids

REDIS_BOUND = 2.0  # seconds: the bound for an answer during a Redis outage
POSTGRES_BOUND = 3.0  # DATABASE_CONNECT_TIMEOUT's default; a stopped server refuses at once


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_service_unavailable(response, dependency: str) -> None:
    assert response.status_code == 503, response.content
    body = response.json()
    assert set(body) == {"error", "code", "details", "request_id"}
    assert body["code"] == "service_unavailable"
    assert body["details"] == {"dependency": dependency}
    assert body["request_id"] == response["X-Request-ID"]
    assert 0 < int(response["Retry-After"]) <= 30


def readyz_checks(response) -> dict[str, bool]:
    return {name: check["ok"] for name, check in response.json()["checks"].items()}


# --- Redis ------------------------------------------------------------------------------------


@pytest.mark.chaos
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
def test_the_api_fails_open_while_redis_is_down(api, redis_client, settings, caplog, kill):
    settings.ENRICHMENT_STUCK_AFTER_SECONDS = 0
    before = api.post("/api/v1/enrich", EMAIL_CONTACT, format="json")
    assert before.status_code == 202

    with redis_down(kill=kill):
        # The rate limiter lets it through uncounted; the publish fails and is logged; the
        # committed row is the client's answer.
        response, seconds = timed(lambda: api.post("/api/v1/enrich", EMAIL_CONTACT, format="json"))
        assert response.status_code == 202, response.content
        assert seconds < REDIS_BOUND
        accepted = response.json()["enrichment_id"]
        assert "publishing contacts failed" in caplog.text

        read, seconds = timed(lambda: api.get(f"/api/v1/contacts/{accepted}"))
        assert read.status_code == 200 and read.json()["status"] == "pending"
        assert seconds < REDIS_BOUND
        credits, seconds = timed(lambda: api.get("/api/v1/credits"))
        assert credits.status_code == 200 and seconds < REDIS_BOUND

    # Back (the stopped Redis kept its queue in its append-only file): the reaper publishes
    # the contact whose publish failed.
    services.contacts_reap()
    queued = [i for message in queued_contact_ids(redis_client) for i in message]
    assert accepted in queued
    assert Contact.objects.get(pk=accepted).status == Contact.PENDING


@pytest.mark.chaos
@pytest.mark.django_db(transaction=True)
def test_a_bulk_while_redis_is_down_is_accepted(api, redis_client, settings):
    settings.ENRICHMENT_STUCK_AFTER_SECONDS = 0
    body = {
        "enrichment_type": ["email"],
        "contacts": [
            {"first_name": f"P{i}", "last_name": "Doe", "domain": "acme.io"} for i in range(3)
        ],
    }
    with redis_down():
        response, seconds = timed(
            lambda: api.post(
                "/api/v1/enrich/bulk", json.dumps(body), content_type="application/json"
            )
        )
    # The batch is committed before its publish: a 5xx would only make the client send it
    # again. The reaper publishes it.
    assert response.status_code == 202, response.content
    assert seconds < REDIS_BOUND
    services.contacts_reap()
    queued = {i for message in queued_contact_ids(redis_client) for i in message}
    assert {c["enrichment_id"] for c in response.json()["contacts"]} <= queued


@pytest.mark.chaos
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
def test_readyz_is_503_while_redis_is_down_and_200_once_it_is_back(kill):
    web = WebProcessClient()
    assert web.get("/readyz").status_code == 200
    # No reconnection by the test: the cache's pool and the broker check recover by themselves.
    with redis_down(kill=kill, reset_connections=False):
        response, seconds = timed(lambda: web.get("/readyz"))
        assert response.status_code == 503
        assert seconds < REDIS_BOUND
        assert readyz_checks(response) == {"database": True, "cache": False, "broker": False}
        assert web.get("/healthz").status_code == 200  # liveness touches nothing
    response = web.get("/readyz")
    assert response.status_code == 200, response.content
    assert web.get("/readyz").status_code == 200


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.chaos
@pytest.mark.django_db(transaction=True)
def test_the_api_is_503_while_postgres_is_down_and_recovers_by_itself(api):
    web = WebProcessClient.like(api)
    created = web.post("/api/v1/enrich", EMAIL_CONTACT, format="json")
    assert created.status_code == 202
    contact_url = f"/api/v1/contacts/{created.json()['enrichment_id']}"
    assert web.get(contact_url).status_code == 200  # a warm, persistent connection

    # No reconnection by the test: the web's own request cycle must replace the connection.
    with postgres_down(reset_connections=False):
        for call in (
            lambda: web.get(contact_url),
            lambda: web.post("/api/v1/enrich", EMAIL_CONTACT, format="json"),
            lambda: web.get("/api/v1/contacts"),
            # Authenticated by the idempotency middleware, outside any view: handler500.
            lambda: web.post(
                "/api/v1/enrich", EMAIL_CONTACT, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
            ),
            lambda: api.get(contact_url),  # the plain test client takes the same path
        ):
            response, seconds = timed(call)
            assert_service_unavailable(response, "database")
            assert seconds < POSTGRES_BOUND

        response, seconds = timed(lambda: web.get("/readyz"))
        assert response.status_code == 503
        assert seconds < POSTGRES_BOUND
        assert readyz_checks(response) == {"database": False, "cache": True, "broker": True}

    # The first requests after the restart succeed: nothing was restarted or reset.
    assert web.get("/readyz").status_code == 200
    assert web.get(contact_url).status_code == 200
    again = web.post("/api/v1/enrich", EMAIL_CONTACT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 202  # the key was not kept by the 503: the retry ran


@pytest.mark.chaos
@pytest.mark.django_db(transaction=True)
def test_a_fast_restart_of_postgres_is_ridden_out(api):
    web = WebProcessClient.like(api)
    assert web.get("/readyz").status_code == 200
    assert web.post("/api/v1/enrich", EMAIL_CONTACT, format="json").status_code == 202
    # pg_ctl restart -m fast: every connection, this process's persistent one included, cut.
    postgres_restart_fast(reset_connections=False)
    assert web.get("/readyz").status_code == 200
    response = web.post("/api/v1/enrich", EMAIL_CONTACT, format="json")
    assert response.status_code == 202, response.content
    assert web.get(f"/api/v1/contacts/{response.json()['enrichment_id']}").status_code == 200


@pytest.mark.chaos
@pytest.mark.django_db(transaction=True)
def test_the_admin_is_503_while_postgres_is_down(admin_user):
    web = WebProcessClient()
    web.force_login(admin_user)
    assert web.get("/admin/").status_code == 200
    with postgres_down():
        response, seconds = timed(lambda: web.get("/admin/"))
        assert_service_unavailable(response, "database")
        assert seconds < POSTGRES_BOUND
    assert web.get("/admin/").status_code == 200


# --- Which errors are outages (real errors from real connections, no server stopped) ----------


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


@pytest.mark.django_db
def test_only_connection_level_errors_are_outages():
    port = _closed_port()
    wrapper_class = type(connections["default"])
    nowhere = wrapper_class({**connection.settings_dict, "PORT": port}, alias="nowhere")
    assert outage_dependency(_raised(nowhere.ensure_connection)) == "database"
    closed = wrapper_class(connection.settings_dict, alias="closed")
    closed.ensure_connection()
    closed.connection.close()  # what a server that went away leaves behind
    assert outage_dependency(_raised(lambda: closed.cursor().execute("SELECT 1"))) == "database"
    closed.close()
    assert outage_dependency(_raised(redis.Redis(port=port, retry=None).ping)) == "redis"
    broker = kombu.Connection(f"redis://127.0.0.1:{port}/0", connect_timeout=1)
    assert outage_dependency(_raised(lambda: broker.ensure_connection(max_retries=0))) == "broker"

    # A statement's own failure is not an outage, however the driver classes it.
    def query(sql):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)

    syntax = _raised(lambda: query("SELEC 1"))
    assert isinstance(syntax, ProgrammingError) and outage_dependency(syntax) is None
    canceled = _raised(lambda: query("SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)"))
    assert isinstance(canceled, OperationalError)
    assert isinstance(canceled.__cause__, psycopg.errors.QueryCanceled)
    assert outage_dependency(canceled) is None
    assert outage_dependency(IntegrityError("duplicate")) is None
    assert outage_dependency(redis.ResponseError("WRONGTYPE")) is None
    assert outage_dependency(ValueError("a bug")) is None
