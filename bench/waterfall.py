"""Waterfall throughput: 1,000 live contacts (10 bulk POSTs of 100) through the whole stack.

Run by bench/waterfall.sh, which picks the database and broker (embedded SQLite +
filesystem broker, or PostgreSQL + Redis) and migrates. This script starts the provider
simulator (``SIMULATOR_LATENCY_MS``, default 50), gunicorn and one enrichment worker as
separate processes, creates a live account, POSTs the bulks over HTTP, waits (bounded) until
every contact is finished, and prints contacts finished/s, provider calls/s against the
provider-bound ceiling, and p50/p95 time from POST to ``finished`` (from the rows' own
``finished_at``).

Knobs (environment): BENCH_CONTACTS (1000), BENCH_BULK (100), BENCH_KINDS (email,phone),
BENCH_TIMEOUT (300 s), WORKER_CONCURRENCY (Celery threads = chunks worked on at once, 2),
ENRICHMENT_CONCURRENCY (the worker process's waterfall threads = provider calls in flight,
16), SIMULATOR_LATENCY_MS (50).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.enrichment.models import Contact, ProviderAttempt  # noqa: E402

CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000"))
BULK = int(os.environ.get("BENCH_BULK", "100"))
KINDS = os.environ.get("BENCH_KINDS", "email,phone").split(",")
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "300"))
WORKER_CONCURRENCY = int(os.environ.setdefault("WORKER_CONCURRENCY", "2"))
ENRICHMENT_CONCURRENCY = int(os.environ.setdefault("ENRICHMENT_CONCURRENCY", "16"))
LATENCY_MS = float(os.environ.setdefault("SIMULATOR_LATENCY_MS", "50"))
VAR = Path(settings.VAR_DIR)
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    log = open(VAR / f"bench-{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        args, cwd=ROOT, env=os.environ | env, stdout=log, stderr=subprocess.STDOUT
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    sim_port, web_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = {"PROVIDER_SIMULATOR_URL": sim_url, "LOG_LEVEL": "WARNING"}
    procs = [
        start(
            "simulator",
            [PY, "manage.py", "provider_simulator", "--port", str(sim_port)],
            {"SIMULATOR_LATENCY_MS": str(LATENCY_MS)},
        ),
        start(
            "web",
            [
                str(Path(PY).parent / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--log-level",
                "warning",
            ],
            env,
        ),
        start(
            "worker",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "enrichment",
                "-P",
                "threads",
                "-c",
                str(WORKER_CONCURRENCY),
                "-n",
                f"bench-{web_port}@localhost",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
            ],
            env | {"ENRICHMENT_CONCURRENCY": str(ENRICHMENT_CONCURRENCY)},
        ),
    ]
    try:
        run(sim_url, f"http://127.0.0.1:{web_port}")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(sim_url: str, base: str) -> None:
    wait_http(f"{sim_url}/healthz")
    wait_http(f"{base}/healthz")
    created = subprocess.run(
        [
            PY,
            "manage.py",
            "create_account",
            "--name",
            "bench",
            "--plan",
            "pro",
            "--credits",
            str(CONTACTS * 20),
            "--mode",
            "live",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(created.stdout.strip().splitlines()[-1])["api_key"]
    people = requests.get(f"{sim_url}/_simulator/people?limit={CONTACTS}", timeout=10).json()
    rows = people["people"]
    if len(rows) < CONTACTS:
        raise SystemExit(f"the simulator lists {len(rows)} people; raise SIMULATOR_COMPANIES")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    # Let the worker finish connecting before the clock starts.
    time.sleep(3)

    posted_at: dict[str, float] = {}
    started = time.time()
    for offset in range(0, CONTACTS, BULK):
        body = {
            "contacts": [
                {
                    "first_name": p["first_name"],
                    "last_name": p["last_name"],
                    "company_name": p["company_name"],
                    "domain": p["domain"],
                    "linkedin_url": p["linkedin_url"],
                }
                for p in rows[offset : offset + BULK]
            ],
            "enrichment_type": KINDS,
            "phone_country_codes": ["US", "GB", "DE", "FR"],
        }
        sent = time.time()
        response = session.post(f"{base}/api/v1/enrich/bulk", json=body, timeout=30)
        if response.status_code != 202:
            raise SystemExit(f"bulk POST: {response.status_code} {response.text[:300]}")
        posted_at[response.json()["bulk_id"]] = sent
    posted = time.time()

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done = Contact.objects.filter(status=Contact.FINISHED).count()
        if done >= CONTACTS:
            break
        time.sleep(0.25)
    rows_done = list(
        Contact.objects.filter(status=Contact.FINISHED).values_list("bulk_id", "finished_at")
    )
    finished_times = [f.timestamp() for _, f in rows_done]
    latencies = [f.timestamp() - posted_at[str(b)] for b, f in rows_done]
    end = max(finished_times) if finished_times else time.time()
    elapsed = end - started
    real_calls = ProviderAttempt.objects.filter(outcome__in=["hit", "miss", "error"])
    calls = real_calls.count()
    avg_call_ms = real_calls.aggregate(avg=django.db.models.Avg("duration_ms"))["avg"] or 0
    outcomes = dict(
        Contact.objects.values_list("result_status").annotate(n=django.db.models.Count("id"))
    )
    # One worker process: its waterfall pool is the number of provider calls in flight.
    in_flight = ENRICHMENT_CONCURRENCY
    ceiling = in_flight / (LATENCY_MS / 1000)
    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split(":", 1)[0]
    print(
        json.dumps(
            {
                "database": db,
                "broker": broker,
                "contacts": CONTACTS,
                "finished": len(rows_done),
                "kinds": KINDS,
                "outcomes": outcomes,
                "worker_concurrency": WORKER_CONCURRENCY,
                "enrichment_concurrency": ENRICHMENT_CONCURRENCY,
                "simulator_latency_ms": LATENCY_MS,
                "post_seconds": round(posted - started, 2),
                "elapsed_seconds": round(elapsed, 2),
                "contacts_per_second": round(len(rows_done) / elapsed, 1),
                "provider_calls": calls,
                "calls_per_contact": round(calls / max(1, len(rows_done)), 2),
                "provider_calls_per_second": round(calls / elapsed, 1),
                # Measured by the worker around each call: above the simulated latency, the
                # excess is client-side (GIL, pool) or simulator-side queueing.
                "avg_call_ms": round(avg_call_ms, 1),
                "in_flight_configured": in_flight,
                "provider_bound_ceiling_calls_per_second": round(ceiling, 1),
                "share_of_ceiling": round(calls / elapsed / ceiling, 3),
                "p50_seconds": round(statistics.median(latencies), 2) if latencies else None,
                "p95_seconds": round(percentile(latencies, 0.95), 2) if latencies else None,
            },
            indent=2,
        )
    )
    if len(rows_done) < CONTACTS:
        raise SystemExit(f"only {len(rows_done)} of {CONTACTS} finished within {TIMEOUT}s")


if __name__ == "__main__":
    main()
