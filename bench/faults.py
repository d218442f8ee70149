"""Fault recovery benchmark: run by bench/faults.sh, which provides PostgreSQL and Redis.

The production-shaped stack (``worker``, ``webhooks``, ``beat`` and ``simulator`` started
exactly from their Procfile lines, production settings and defaults for leases, reaper and
sweep) runs live bulks for accounts subscribed to ``contact.enriched`` and
``bulk.completed`` on a local receiver. For each fault in turn, fresh bulks are submitted;
once some contacts finished and some are still pending, the fault is made:

* ``none``: nothing (the baseline: how long the remaining work takes anyway);
* ``worker_sigkill``: SIGKILL the ``worker``, started again at once from its Procfile line;
* ``webhooks_sigkill``: SIGKILL the ``webhooks`` process with deliveries in flight (the
  receiver answers after 0.3 s), started again at once;
* ``redis_restart``: Redis stopped gracefully (SIGTERM; it flushes its AOF), started 3 s later;
* ``redis_sigkill``: the same with SIGKILL;
* ``postgres_restart``: ``pg_ctl restart -m fast`` (every connection cut).

Measured per fault: seconds from the fault (and from the restart: the new process spawned,
or the server answering again) to the last affected contact finished (affected: pending at
the fault) and to the last delivery succeeded; what was pending, held (a live lease) and in
flight at the fault; whether every long-running process that was not the one killed is the
same pid and alive; and the consistency of the end state. Every wait is bounded: a fault
whose work is not done ``DEADLINE`` seconds after it is reported as timed out.

Usage: bench/faults.sh [bulks-per-fault] [rounds]
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import InterfaceError, OperationalError, connections  # noqa: E402
from django.db.models import Max, Sum  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.accounts.models import ApiKey, LedgerEntry, Plan  # noqa: E402
from apps.accounts.services import account_create  # noqa: E402
from apps.enrichment.models import Contact  # noqa: E402
from apps.enrichment.services import bulk_enqueue  # noqa: E402
from apps.enrichment.validation import clean_bulk  # noqa: E402
from apps.webhooks import services as webhook_services  # noqa: E402
from apps.webhooks.models import Delivery, Event  # noqa: E402
from bench.stack import procfile_command, start, wait_until  # noqa: E402
from config.celery import app  # noqa: E402
from tests.support import outages  # noqa: E402
from tests.support.receiver import Answer, Receiver  # noqa: E402
from tests.support.simulator import free_port  # noqa: E402

BULKS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
BULK_SIZE = 100
DEADLINE = 180.0  # per fault, from the fault to everything finished and delivered
# A fault that timed out is looked at again at the end, up to this long after it: past the
# broker's visibility timeout (300 s) and the sweep's republish age (300 s).
LATE_DEADLINE = 420.0
TRIGGER_TIMEOUT = 60.0
SLOW_ANSWER = 0.3  # seconds the receiver takes to answer during webhooks_sigkill
REDIS_DOWN = 3.0
FAULTS = [
    "none",
    "worker_sigkill",
    "webhooks_sigkill",
    "redis_restart",
    "redis_sigkill",
    "postgres_restart",
]
PROCESSES = ("simulator", "webhooks", "worker", "beat")
EVENTS = [Event.CONTACT_ENRICHED, Event.BULK_COMPLETED]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def db_safe(fn: Callable[[], Any], default: Any = None) -> Any:
    """``fn()``, or ``default`` while PostgreSQL is unreachable (the connection is replaced)."""
    try:
        return fn()
    except (OperationalError, InterfaceError):
        for conn in connections.all(initialized_only=True):
            conn.close()
        return default


def seconds(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round(later - earlier, 2)


class Stack:
    """The Procfile's long-running processes, and the receiver; ``stop`` ends them all."""

    def __init__(self) -> None:
        self.receiver = Receiver().start()
        self.procs: dict[str, subprocess.Popen] = {}
        self.pids_file = Path(os.environ["SLUICE_VAR_DIR"]) / "pids"

    def start(self, name: str) -> subprocess.Popen:
        proc = start(name)
        with self.pids_file.open("a") as f:  # for faults.sh's trap, should this process die
            f.write(f"{proc.pid}\n")
        self.procs[name] = proc
        return proc

    def up(self) -> None:
        port = free_port()
        os.environ.update(
            {
                "SIMULATOR_PORT": str(port),
                "SIMULATOR_LATENCY_MS": "200",
                "SIMULATOR_ERROR_RATE": "0",
                "PROVIDER_SIMULATOR_URL": f"http://127.0.0.1:{port}",
            }
        )
        self.start("simulator")

        def simulator_up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).ok
            except requests.RequestException:
                return False

        if not wait_until(simulator_up, 30, interval=0.2):
            raise RuntimeError("the simulator did not start; see simulator.log")
        for name in ("webhooks", "worker", "beat"):
            self.start(name)
        nodes = ("enrichment@", "webhooks@")

        def workers_up() -> bool:
            replies = app.control.ping(timeout=1)
            return all(any(n.startswith(node) for r in replies for n in r) for node in nodes)

        if not wait_until(workers_up, 60, interval=0.5):
            raise RuntimeError("the workers did not answer ping; see worker.log, webhooks.log")

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def revive(self) -> list[str]:
        """Start again any process that exited (reported: it should not have)."""
        dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
        for name in dead:
            log(f"! {name} had exited (code {self.procs[name].returncode}); starting it again")
            self.start(name)
        return dead

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.receiver.stop()


class Run:
    """One fault's account (live, plenty of credits), its endpoint and its bulks."""

    def __init__(self, stack: Stack, tag: str, *, answer_delay: float = 0.0) -> None:
        self.tag = tag
        self.receiver = stack.receiver
        created = account_create(
            name=f"faults-{tag}", plan_code="bench", credits=1_000_000, mode=ApiKey.MODE_LIVE
        )
        self.account, self.api_key = created.account, created.key.api_key
        self.path = f"/hook/{tag}"
        self.receiver.routes[self.path] = Answer(status=204, body=b"", delay=answer_delay)
        webhook_services.endpoint_create(
            account=self.account, url=self.receiver.url(self.path), events=EVENTS
        )
        self.balance_before = self.account.credits
        self.bulk_ids: list[Any] = []

    def submit(self, bulks: int, size: int = BULK_SIZE) -> None:
        for b in range(bulks):
            body = {
                "contacts": [
                    {
                        "first_name": f"Grace{self.tag}x{b}x{i}",
                        "last_name": "Hopper",
                        "company_name": "Navy",
                        "domain": f"navy-{self.tag}-{b}-{i}.example",
                        "custom": {"bulk": b, "row": i},
                    }
                    for i in range(size)
                ],
                "enrichment_type": ["email"],
            }
            clean, errors = clean_bulk(body, consent=False, bulk_max=size)
            assert clean is not None, errors
            bulk, _ = bulk_enqueue(account=self.account, api_key=self.api_key, clean=clean)
            self.bulk_ids.append(bulk.pk)

    @property
    def submitted(self) -> int:
        return len(self.bulk_ids) * BULK_SIZE

    def contacts(self):
        return Contact.objects.filter(bulk_id__in=self.bulk_ids)

    def deliveries(self):
        return Delivery.objects.filter(account=self.account)

    def expected_deliveries(self) -> int:
        return self.submitted + len(self.bulk_ids)

    def in_flight(self):
        return self.deliveries().filter(
            status=Delivery.PENDING, claim_token__isnull=False, claimed_until__gt=timezone.now()
        )

    def started(self, *, deliveries_in_flight: bool) -> bool:
        """Some contacts finished (a tenth), some pending; and, if asked, a delivery in flight."""
        finished = self.contacts().filter(status=Contact.FINISHED).count()
        pending = self.contacts().filter(status=Contact.PENDING).count()
        if finished < max(1, self.submitted // 10) or not pending:
            return False
        return not deliveries_in_flight or self.in_flight().exists()

    def done(self) -> bool:
        return (
            not self.contacts().filter(status=Contact.PENDING).exists()
            and self.deliveries().count() >= self.expected_deliveries()
            and not self.deliveries().exclude(status=Delivery.SUCCEEDED).exists()
        )

    def snapshot(self) -> dict[str, Any]:
        now = timezone.now()
        pending = self.contacts().filter(status=Contact.PENDING)
        return {
            "affected": list(pending.values_list("pk", flat=True)),
            "contacts_finished": self.contacts().filter(status=Contact.FINISHED).count(),
            "contacts_pending": pending.count(),
            "contacts_held": pending.filter(
                lease_owner__isnull=False, lease_expires_at__gt=now
            ).count(),
            "deliveries_pending": self.deliveries().filter(status=Delivery.PENDING).count(),
            "deliveries_in_flight": self.in_flight().count(),
        }

    def consistency(self) -> dict[str, Any]:
        contacts = self.contacts()
        self.account.refresh_from_db()
        charged = contacts.aggregate(n=Sum("credits_charged"))["n"] or 0
        charges = LedgerEntry.objects.filter(
            contact_id__in=contacts.values("pk"), entry_type=LedgerEntry.CHARGE
        )
        per_contact = Counter(charges.values_list("contact_id", flat=True))
        events = Event.objects.filter(account=self.account)
        enriched = Counter(
            e.payload["data"]["enrichment_id"] for e in events.filter(type=Event.CONTACT_ENRICHED)
        )
        completed = Counter(
            e.payload["data"]["bulk_id"] for e in events.filter(type=Event.BULK_COMPLETED)
        )
        wanted = {str(pk) for pk in events.filter(type__in=EVENTS).values_list("pk", flat=True)}
        arrivals = [r.headers.get("webhook-id") for r in self.receiver.received(path=self.path)]
        checks = {
            "all_finished": contacts.count() == self.submitted
            and not contacts.filter(status=Contact.PENDING).exists(),
            "credits_match": self.balance_before - self.account.credits == charged,
            "one_charge_per_contact": all(n == 1 for n in per_contact.values())
            and -sum(charges.values_list("amount", flat=True)) == charged,
            "one_contact_enriched_per_contact": sorted(enriched)
            == sorted(str(pk) for pk in contacts.values_list("pk", flat=True))
            and set(enriched.values()) == {1},
            "one_bulk_completed_per_bulk": completed == Counter(str(b) for b in self.bulk_ids),
            "all_deliveries_succeeded": self.deliveries().count() == self.expected_deliveries()
            and not self.deliveries().exclude(status=Delivery.SUCCEEDED).exists(),
            "every_event_received": wanted <= set(arrivals),
        }
        return {
            "ok": all(checks.values()),
            **checks,
            "credits_charged": charged,
            "balance_drop": self.balance_before - self.account.credits,
            "contacts_run_again": contacts.filter(run_count__gt=1).count(),
            "webhooks_received": len(arrivals),
            "webhooks_redelivered": len(arrivals) - len(set(arrivals)),
        }


def inject(stack: Stack, fault: str) -> tuple[float, float | None, str | None]:
    """Make the fault; returns when it was made, when its restart was (None without one),
    and the process that was killed (None for a server fault)."""
    at = time.time()
    if fault == "none":
        return at, None, None
    if fault in ("worker_sigkill", "webhooks_sigkill"):
        name = fault.split("_")[0]
        stack.kill(name)
        stack.start(name)
        return at, time.time(), name
    if fault in ("redis_restart", "redis_sigkill"):
        outages.redis_stop(kill=fault == "redis_sigkill")
        time.sleep(REDIS_DOWN)
        outages.redis_start()  # returns once Redis answers PING (its AOF loaded)
        return at, time.time(), None
    if fault == "postgres_restart":
        outages.postgres_restart_fast()  # returns once PostgreSQL accepts connections
        return at, time.time(), None
    raise ValueError(fault)


class Fault:
    """One fault's run, and when the fault and its restart were."""

    def __init__(self, run: Run, before: dict[str, Any], at: float, restart_at: float | None):
        self.run, self.before, self.at, self.restart_at = run, before, at, restart_at

    def figures(self) -> dict[str, Any]:
        """Seconds from the fault and from the restart to the last affected contact finished
        and to the last delivery succeeded."""

        def last() -> tuple[float | None, float | None]:
            # None for what is not all done yet: a fault that timed out has no figure.
            affected = self.run.contacts().filter(pk__in=self.before["affected"])
            contact = None
            if self.before["affected"] and not affected.filter(status=Contact.PENDING).exists():
                contact = affected.aggregate(t=Max("finished_at"))["t"]
            deliveries = self.run.deliveries()
            delivery = None
            if (
                deliveries.count() >= self.run.expected_deliveries()
                and not deliveries.exclude(status=Delivery.SUCCEEDED).exists()
            ):
                delivery = deliveries.aggregate(t=Max("updated_at"))["t"]
            return (
                contact.timestamp() if contact else None,
                delivery.timestamp() if delivery else None,
            )

        contact, delivery = db_safe(last, (None, None))
        return {
            "seconds_from_fault": {
                "last_affected_contact_finished": seconds(contact, self.at),
                "last_delivery_succeeded": seconds(delivery, self.at),
            },
            "seconds_from_restart": {
                "last_affected_contact_finished": seconds(contact, self.restart_at),
                "last_delivery_succeeded": seconds(delivery, self.restart_at),
            }
            if self.restart_at is not None
            else None,
        }

    def stuck(self) -> dict[str, Any]:
        """What is left undone, for a fault that timed out: counts, a few of the deliveries
        (times in seconds from the fault) and the broker's queues."""

        def rel(value) -> float | None:
            return seconds(value.timestamp(), self.at) if value else None

        def rows() -> dict[str, Any]:
            pending = self.run.contacts().filter(status=Contact.PENDING)
            deliveries = self.run.deliveries().exclude(status=Delivery.SUCCEEDED)
            return {
                "contacts_pending": pending.count(),
                "deliveries_not_succeeded": deliveries.count(),
                "deliveries": [
                    {
                        "status": d.status,
                        "attempts": d.attempt_count,
                        "created": rel(d.created_at),
                        "published": rel(d.published_at),
                        "claimed_until": rel(d.claimed_until),
                        "last_attempt": rel(d.last_attempt_at),
                    }
                    for d in deliveries.order_by("created_at")[:5]
                ],
            }

        out = {"after_seconds": seconds(time.time(), self.at)} | db_safe(rows, {})
        try:
            broker = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
            out["broker"] = {
                "unacked": broker.hlen("unacked"),
                "queued": {q: broker.llen(q) for q in ("enrichment", "webhooks", "maintenance")},
            }
        except redis.RedisError as exc:
            out["broker"] = str(exc)
        return out


def run_fault(stack: Stack, fault: str, round_no: int) -> tuple[dict[str, Any], Fault]:
    dead_before = stack.revive()
    tag = f"r{round_no}f{FAULTS.index(fault)}"
    run = Run(stack, tag, answer_delay=SLOW_ANSWER if fault == "webhooks_sigkill" else 0.0)
    submitted_at = time.time()
    run.submit(BULKS)
    triggered = wait_until(
        lambda: db_safe(
            lambda: run.started(deliveries_in_flight=fault == "webhooks_sigkill"), False
        ),
        TRIGGER_TIMEOUT,
    )
    before = run.snapshot()
    pids_before = stack.pids()
    fault_at, restart_at, killed = inject(stack, fault)
    measured = Fault(run, before, fault_at, restart_at)
    done = wait_until(lambda: db_safe(run.done, False), DEADLINE - (time.time() - fault_at), 0.1)
    result: dict[str, Any] = {
        "fault": fault,
        "round": round_no,
        "completed_in_time": done,
        **measured.figures(),
        "restart_after_seconds": seconds(restart_at, fault_at),
        "submitted_to_fault_seconds": seconds(fault_at, submitted_at),
        "at_fault": {k: v for k, v in before.items() if k != "affected"} | {"triggered": triggered},
    }
    if not done:
        result["timed_out"] = measured.stuck()
    others = {}
    for name, pid in pids_before.items():
        if name == killed:
            continue
        proc = stack.procs[name]
        others[name] = {"same_pid": proc.pid == pid, "alive": proc.poll() is None}
    result["other_processes"] = others
    result["other_processes_ok"] = all(p["same_pid"] and p["alive"] for p in others.values())
    if dead_before:
        result["restarted_before_fault"] = dead_before
    result["consistency"] = db_safe(run.consistency, {"ok": False, "error": "database"})
    return result, measured


def late_check(result: dict[str, Any], measured: Fault) -> None:
    """For a fault that timed out: whether (and when) its work got done after all, waiting
    until ``LATE_DEADLINE`` seconds after the fault at most."""
    remaining = measured.at + LATE_DEADLINE - time.time()
    done = wait_until(lambda: db_safe(measured.run.done, False), remaining, 0.5) or db_safe(
        measured.run.done, False
    )
    result["eventually"] = {
        "done": done,
        "checked_within_seconds": LATE_DEADLINE,
        **measured.figures(),
        "consistency": db_safe(measured.run.consistency, {"ok": False, "error": "database"}),
    }
    if not done:
        result["eventually"]["stuck"] = measured.stuck()


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per fault, over the rounds: the median and the range of each figure."""

    def spread(values: list[float | None]) -> dict[str, float] | None:
        values = [v for v in values if v is not None]
        if not values:
            return None
        return {
            "median": round(statistics.median(values), 2),
            "min": min(values),
            "max": max(values),
        }

    summary = {}
    for fault in FAULTS:
        rows = [r for r in results if r["fault"] == fault]
        entry: dict[str, Any] = {"rounds": len(rows)}
        # A round that timed out counts with its late figure when it got done after all.
        final = [r.get("eventually", r) for r in rows]
        for since in ("seconds_from_fault", "seconds_from_restart"):
            entry[since] = {
                what: spread([(r[since] or {}).get(what) for r in final])
                for what in ("last_affected_contact_finished", "last_delivery_succeeded")
            }
        entry["timed_out_rounds"] = sum(1 for r in rows if not r["completed_in_time"])
        entry["never_done_rounds"] = sum(
            1 for r in rows if "eventually" in r and not r["eventually"]["done"]
        )
        entry["contacts_held_at_fault"] = spread([r["at_fault"]["contacts_held"] for r in rows])
        entry["all_consistent"] = all(r.get("eventually", r)["consistency"].get("ok") for r in rows)
        entry["other_processes_ok"] = all(r["other_processes_ok"] for r in rows)
        summary[fault] = entry
    return summary


def main() -> None:
    # faults.sh's trap sends SIGTERM: end through the finally below, stopping every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    Plan.objects.update_or_create(
        code="bench", defaults={"name": "Bench", "api_access": True, "bulk_max": BULK_SIZE}
    )
    stack = Stack()
    results: list[dict[str, Any]] = []
    late: list[tuple[dict[str, Any], Fault]] = []
    try:
        stack.up()
        # Warm-up: a small bulk through every process, webhooks included.
        warm = Run(stack, "warmup")
        warm.submit(1, size=BULK_SIZE)
        if not wait_until(lambda: db_safe(warm.done, False), 120, 0.2):
            raise RuntimeError("the warm-up bulk did not finish in 120 s; see the logs")
        log(f"stack up; logs in {os.environ['SLUICE_VAR_DIR']}")
        for round_no in range(1, ROUNDS + 1):
            for fault in FAULTS:
                result, measured = run_fault(stack, fault, round_no)
                results.append(result)
                log(json.dumps(result))
                if not result["completed_in_time"]:
                    late.append((result, measured))
        for result, measured in late:
            late_check(result, measured)
            log(
                json.dumps(
                    {"late": result["fault"], "round": result["round"]} | result["eventually"]
                )
            )
        output = {
            "bulks_per_fault": BULKS,
            "contacts_per_bulk": BULK_SIZE,
            "rounds": ROUNDS,
            "deadline_seconds": DEADLINE,
            "late_deadline_seconds": LATE_DEADLINE,
            "settings": {
                "ENRICHMENT_LEASE_SECONDS": settings.ENRICHMENT_LEASE_SECONDS,
                "ENRICHMENT_REAP_INTERVAL_SECONDS": settings.ENRICHMENT_REAP_INTERVAL_SECONDS,
                "WEBHOOK_LEASE_SECONDS": settings.WEBHOOK_LEASE_SECONDS,
                "WEBHOOK_SWEEP_INTERVAL_SECONDS": settings.WEBHOOK_SWEEP_INTERVAL_SECONDS,
                "CELERY_VISIBILITY_TIMEOUT": settings.CELERY_VISIBILITY_TIMEOUT,
                "WEBHOOK_REPUBLISH_AFTER_SECONDS": settings.WEBHOOK_REPUBLISH_AFTER_SECONDS,
                "ENRICHMENT_STUCK_AFTER_SECONDS": settings.ENRICHMENT_STUCK_AFTER_SECONDS,
                "DATABASE_OUTAGE_RETRY_SECONDS": settings.DATABASE_OUTAGE_RETRY_SECONDS,
                "SIMULATOR_LATENCY_MS": 200,
                "receiver_answer_seconds_during_webhooks_sigkill": SLOW_ANSWER,
                "redis_down_seconds": REDIS_DOWN,
                "postgres_durable": os.environ.get("SLUICE_PG_DURABLE") == "1",
            },
            "processes": {name: " ".join(procfile_command(name)[1:]) for name in PROCESSES},
            "medians": medians(results),
            "faults": results,
        }
        print(json.dumps(output, indent=2))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
