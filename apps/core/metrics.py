"""Prometheus ``/metrics``: gauges each app computes from the database and broker at scrape.

Values come from PostgreSQL and Redis rather than per-process counters, so they are right
however many gunicorn and Celery processes run. Each app contributes a ``metrics`` module
with a ``collect()`` generator of metric families.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from importlib import import_module

from django.apps import apps
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .errors import envelope, json_404


def broker_queue_depths() -> dict[str, int] | None:
    """Messages waiting per queue on a Redis broker (None for other brokers)."""
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return None
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in ("enrichment", "webhooks", "maintenance"):
                pipe.llen(queue)
            depths = pipe.execute()
    finally:
        client.close()
    return dict(zip(("enrichment", "webhooks", "maintenance"), depths, strict=True))


class SluiceCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        depths = broker_queue_depths()
        if depths is not None:
            family = GaugeMetricFamily(
                "sluice_queue_depth", "Messages waiting in a broker queue", labels=["queue"]
            )
            for queue, depth in depths.items():
                family.add_metric([queue], depth)
            yield family
        for config in apps.get_app_configs():
            if not config.name.startswith("apps.") or config.name == "apps.core":
                continue
            try:
                module = import_module(f"{config.name}.metrics")
            except ModuleNotFoundError:
                continue
            yield from module.collect()


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text. With ``METRICS_TOKEN`` set, only for ``Authorization: Bearer <it>``
    (401 otherwise). In production without a token the endpoint does not exist (404): queue
    depths and outcome counts are not for the public, and a deployment that forgot the token
    keeps serving the API rather than refusing to start over a monitoring setting."""
    from django.conf import settings

    token = settings.METRICS_TOKEN
    if not token and settings.METRICS_REQUIRE_TOKEN:
        return json_404(request)
    if token and not hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
    ):
        response = JsonResponse(
            envelope("Send 'Authorization: Bearer <METRICS_TOKEN>'", "unauthorized"), status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SluiceCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
