"""Webhook settings and Celery wiring: production defaults, retention floor, queues, beat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.conf import settings
from django.db import connection

from apps.webhooks import tasks
from config.celery import app

NAMES = [
    "WEBHOOK_ALLOW_HTTP",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS",
    "WEBHOOK_RETRY_SCHEDULE",
    "WEBHOOK_DISABLE_AFTER_FAILURES",
    "WEBHOOK_DISABLE_AFTER_SECONDS",
    "WEBHOOK_CONNECT_TIMEOUT",
    "WEBHOOK_READ_TIMEOUT",
    "WEBHOOK_EVENT_RETENTION_SECONDS",
]


def settings_in(**env: str) -> dict:
    """The webhook settings as a fresh process with this environment reads them."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOK_")}
    clean.pop("SLUICE_TESTING", None)
    clean.update(env)
    code = (
        "import json, config.settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {NAMES!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_production_refuses_http_and_private_targets_by_default():
    production = settings_in(SLUICE_ENV="production", SECRET_KEY="x" * 50)
    assert production["WEBHOOK_ALLOW_HTTP"] is False
    assert production["WEBHOOK_ALLOW_PRIVATE_TARGETS"] is False
    development = settings_in(SLUICE_ENV="development")
    assert development["WEBHOOK_ALLOW_HTTP"] is True
    assert development["WEBHOOK_ALLOW_PRIVATE_TARGETS"] is True


def test_spec_defaults_and_the_24_hour_retention_floor():
    defaults = settings_in(SLUICE_ENV="production", SECRET_KEY="x" * 50)
    assert defaults["WEBHOOK_RETRY_SCHEDULE"] == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    assert 27 <= sum(defaults["WEBHOOK_RETRY_SCHEDULE"]) / 3600 < 28  # "about 27 h in all"
    assert defaults["WEBHOOK_DISABLE_AFTER_FAILURES"] == 20
    assert defaults["WEBHOOK_DISABLE_AFTER_SECONDS"] == 5 * 86400
    assert (defaults["WEBHOOK_CONNECT_TIMEOUT"], defaults["WEBHOOK_READ_TIMEOUT"]) == (5, 15)
    assert defaults["WEBHOOK_EVENT_RETENTION_SECONDS"] >= 86400
    short = settings_in(WEBHOOK_EVENT_RETENTION_SECONDS="60")
    assert short["WEBHOOK_EVENT_RETENTION_SECONDS"] == 86400
    shrunk = settings_in(WEBHOOK_RETRY_SCHEDULE="0,0.2,0.2")
    assert shrunk["WEBHOOK_RETRY_SCHEDULE"] == [0, 0.2, 0.2]


def queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_deliveries_go_to_the_webhooks_queue_and_upkeep_to_maintenance():
    registered = {tasks.sweep_webhook_deliveries.name, tasks.purge_webhook_events.name}
    assert queue_of(tasks.deliver.name) == "webhooks"
    beat = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for task in ("maintenance.sweep_webhook_deliveries", "maintenance.purge_webhook_events"):
        assert task in beat and task in registered
        assert queue_of(task) == "maintenance"
    assert beat["maintenance.sweep_webhook_deliveries"] == settings.WEBHOOK_SWEEP_INTERVAL_SECONDS
    assert beat["maintenance.purge_webhook_events"] <= 3600


@pytest.mark.django_db
def test_celery_keeps_a_task_thread_s_database_connection_across_tasks():
    """Celery's Django fixup, as the worker runs it around each task, reads
    ``CELERY_DB_REUSE_MAX``: a task thread's connection outlives its tasks (one new
    PostgreSQL backend per batch otherwise)."""
    assert settings.CELERY_DB_REUSE_MAX == 100
    fixup = DjangoWorkerFixup(app)
    assert fixup.db_reuse_max == settings.CELERY_DB_REUSE_MAX
    task = SimpleNamespace(request=SimpleNamespace(is_eager=False))
    connection.ensure_connection()
    kept = connection.connection
    for _ in range(settings.CELERY_DB_REUSE_MAX - 1):
        fixup.on_task_prerun(task)
        fixup.on_task_postrun(task)
    assert connection.connection is kept
