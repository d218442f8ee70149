"""Webhook delivery benchmark: run by bench/webhooks.sh, which provides PostgreSQL and Redis.

Two phases, each bounded in time, with the ``webhooks`` (and, for phase 2, ``worker``) process
started exactly as the Procfile says, against a fast local receiver (ThreadingHTTPServer):

1. throughput: N events with one delivery each are committed at once; deliveries/s is N over
   the time from the commit to the last arrival;
2. latency: contacts are submitted at a steady rate (below capacity) and each one's
   ``contact.enriched`` arrival is compared with its ``finished_at``: p50/p95/max delay.

Usage: bench/webhooks.sh [deliveries] [latency-seconds]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.accounts.models import Plan  # noqa: E402
from apps.accounts.services import account_create  # noqa: E402
from apps.enrichment.services import contact_enqueue  # noqa: E402
from apps.enrichment.validation import Problems, clean_contact  # noqa: E402
from apps.webhooks import services  # noqa: E402
from apps.webhooks.models import Delivery, DeliveryAttempt  # noqa: E402
from bench.stack import procfile_command, start, wait_until  # noqa: E402
from tests.support.receiver import Answer, Receiver  # noqa: E402

DELIVERIES = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
LATENCY_SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20
LATENCY_RATE = 20  # contacts per second in phase 2, well under the measured capacity
DEADLINE = 180.0


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p * len(values)) - 1))]


def main() -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    Plan.objects.update_or_create(
        code="bench",
        defaults={"name": "Bench", "api_access": True, "bulk_max": 100},
    )
    created = account_create(name="bench", plan_code="bench", credits=0)
    account, api_key = created.account, created.key.api_key
    receiver = Receiver(Answer(status=204, body=b"")).start()
    services.endpoint_create(account=account, url=receiver.url(), events=["contact.enriched"])

    processes = [start("webhooks")]
    try:
        # Warm-up: the worker is up once a first delivery arrives.
        with transaction.atomic():
            services.event_emit(account_id=account.pk, type="contact.enriched", data={})
        assert wait_until(lambda: len(receiver.received()) == 1, 60), "webhooks did not start"
        receiver.take()

        # Phase 1: throughput.
        with transaction.atomic():
            for i in range(DELIVERIES):
                services.event_emit(account_id=account.pk, type="contact.enriched", data={"n": i})
        committed = time.time()
        done = wait_until(lambda: len(receiver.received()) >= DELIVERIES, DEADLINE)
        items = receiver.take()
        elapsed = (max(r.at for r in items) if items else time.time()) - committed
        # The row is marked succeeded just after the receiver answers.
        wait_until(lambda: Delivery.objects.filter(status="succeeded").count() > DELIVERIES, 30)
        throughput = {
            "deliveries": DELIVERIES,
            "arrived": len(items),
            "completed_in_time": done,
            "seconds": round(elapsed, 2),
            "deliveries_per_second": round(len(items) / elapsed, 1),
            "succeeded_rows": Delivery.objects.filter(status="succeeded").count(),
        }

        # Phase 2: contact finished -> webhook arrived, with the enrichment worker running.
        processes.append(start("worker"))
        body = {"first_name": "Sarah", "last_name": "Chen", "company_name": "Stripe"}
        problems = Problems()
        clean = clean_contact(
            body | {"enrichment_type": ["email"]}, problems=problems, consent=False
        )
        assert clean is not None, problems.errors
        sent = 0
        phase2_started = timezone.now()
        started = time.monotonic()
        while time.monotonic() - started < LATENCY_SECONDS:
            contact_enqueue(account=account, api_key=api_key, clean=clean)
            sent += 1
            time.sleep(max(0.0, started + sent / LATENCY_RATE - time.monotonic()))
        wait_until(lambda: len(receiver.received()) >= sent, 60)
        delays = []
        for arrival in receiver.take():
            data = json.loads(arrival.body)["data"]
            finished = datetime.fromisoformat(data["finished_at"].replace("Z", "+00:00"))
            delays.append((arrival.at - finished.timestamp()) * 1000)
        # Where the delay goes: from the delivery row's commit to the worker's claim.
        phase2 = DeliveryAttempt.objects.filter(
            delivery__event__created_at__gte=phase2_started
        ).values_list("at", "delivery__created_at")
        waits = [(at - created).total_seconds() * 1000 for at, created in phase2]
        latency = {
            "contacts": sent,
            "rate_per_second": LATENCY_RATE,
            "arrived": len(delays),
            "p50_ms": round(statistics.median(delays), 1) if delays else None,
            "p95_ms": round(percentile(delays, 0.95), 1) if delays else None,
            "max_ms": round(max(delays), 1) if delays else None,
            "queue_wait_p50_ms": round(statistics.median(waits), 1) if waits else None,
            "queue_wait_p95_ms": round(percentile(waits, 0.95), 1) if waits else None,
        }
        print(
            json.dumps(
                {
                    "webhooks_process": " ".join(procfile_command("webhooks")[1:]),
                    "throughput": throughput,
                    "finish_to_arrival": latency,
                },
                indent=2,
            )
        )
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        receiver.stop()


if __name__ == "__main__":
    main()
