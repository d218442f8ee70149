"""The Celery application: queues, routes and the reliability settings from STYLE.md."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("sluice")


def _configure() -> None:
    from django.conf import settings

    broker_url = settings.CELERY_BROKER_URL
    transport_options: dict = {"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT}
    if broker_url.startswith(("redis://", "rediss://")):
        # A message a killed worker had taken but not yet claimed in the database (it had
        # not started, or died in the milliseconds before its claim) comes back once it has
        # been unacknowledged for the visibility timeout: look for such messages every 10 s
        # (kombu's default scans every 100 s).
        transport_options["unacked_restore_throttle"] = 1
        # A Redis that stops answering (a lost host rather than a restart, which resets the
        # connection at once) must not hang a publish or the consumer forever.
        transport_options.update(
            {
                "socket_connect_timeout": 2,
                "socket_timeout": 10,
                "socket_keepalive": True,
                "health_check_interval": 10,
                "retry_on_timeout": True,
            }
        )
    if broker_url.startswith("filesystem://"):
        # Embedded default: a broker that needs no server. Every process shares one folder.
        folder = settings.BROKER_DIR
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        _exchange_tables_create(folder / "control")
        transport_options.update(
            {
                "data_folder_in": str(folder / "queue"),
                "data_folder_out": str(folder / "queue"),
                "processed_folder": str(folder / "processed"),
                "control_folder": str(folder / "control"),
                "store_processed": False,
                # The default 1 s poll would add up to a second to every contact.
                "polling_interval": 0.1,
            }
        )

    app.conf.update(
        broker_url=broker_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # Reconnect to a broker that went away for as long as it takes (the default gives up
        # after 100 tries and the process exits; docs/reliability.md).
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        # A publish (the API's, beat's, a worker's) gives up within about a second and a half
        # when the broker is down; the database row it announces stays and is re-published.
        broker_connection_timeout=2,
        task_publish_retry_policy={
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Running tasks go on when the broker connection drops: the threads pool cannot kill
        # them (asking it to makes the worker exit), and they need no broker to finish. Their
        # messages may come back after the visibility timeout; leases and the finish's fence
        # make that second run a no-op (docs/reliability.md).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        task_time_limit=settings.CELERY_TASK_TIME_LIMIT,
        task_default_queue="enrichment",
        task_queues=[Queue("enrichment"), Queue("webhooks"), Queue("maintenance")],
        task_routes={
            "apps.enrichment.tasks.*": {"queue": "enrichment"},
            "apps.webhooks.tasks.*": {"queue": "webhooks"},
            "maintenance.*": {"queue": "maintenance"},
        },
        beat_schedule=settings.CELERY_BEAT_SCHEDULE,
        worker_hijack_root_logger=False,
        timezone="UTC",
        # Read under this name by Celery's Django fixup (not a namespaced Celery setting).
        CELERY_DB_REUSE_MAX=settings.CELERY_DB_REUSE_MAX or None,
    )


# kombu's filesystem transport creates an exchange table by opening it for writing and only
# then locking it: a second process starting at the same moment reads the empty file and dies
# (JSONDecodeError while binding its queues). Tables that already exist are updated under a
# lock, so each one is created up front, atomically (hard link of a complete file).
_EXCHANGES = ("enrichment", "webhooks", "maintenance", "celery.pidbox", "reply.celery.pidbox")


def _exchange_tables_create(control: Path) -> None:
    for name in _EXCHANGES:
        table = control / f"{name}.exchange"
        if table.exists():
            continue
        fd, tmp = tempfile.mkstemp(dir=control, prefix=".new-")
        try:
            os.write(fd, b"[]")
            os.close(fd)
            with contextlib.suppress(FileExistsError):  # another process was first: fine
                os.link(tmp, table)
        finally:
            os.unlink(tmp)


@signals.task_prerun.connect
def _connections_check(task: object = None, **_: object) -> None:
    """With connections kept across tasks (``CELERY_DB_REUSE_MAX``), a task starts as Django
    starts a request: a connection past ``CONN_MAX_AGE`` is closed, and one kept is health
    checked (``CONN_HEALTH_CHECKS``) on its first query, so one that a PostgreSQL restart cut
    is replaced before the task uses it."""
    from django.conf import settings
    from django.db import close_old_connections

    # An eager task runs inside its caller (maybe in its transaction): Celery's fixup leaves
    # its connection alone, and so does this.
    eager = getattr(getattr(task, "request", None), "is_eager", False)
    if settings.CELERY_DB_REUSE_MAX and not eager:
        close_old_connections()


_configure()
app.autodiscover_tasks()
