"""In-process cost of the intake request: run by bench/intake.sh.

The HTTP benchmark (bench/api.sh) says how fast the whole stack is, but on a shared VM its
figures drift by 10-20 % from one minute to the next, too much to see a change of a few per
cent. This one measures Sluice's own code, through Django's WSGI handler, in one process:

1. CPU milliseconds per request (process time, best of 3 runs) for ``GET /healthz`` and
   ``POST /api/v1/enrich`` (sandbox key, no rate limits, the coalesced publish included);
2. PostgreSQL's CPU per intake INSERT (read from its backend's /proc entry), with psycopg's
   prepared statements off and on (``DATABASE_PREPARE_THRESHOLD``), and the CPU of one
   Celery publish of 11 contact ids (what the publisher thread sends under load);
3. with ``--callgrind``: instructions per request under valgrind, which are the same from
   one run to the next whatever else the machine does. The publish linger is set far out
   there, since valgrind runs one thread at a time and would otherwise publish each
   contact alone: this counts the request path only.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
N = int(ARGS[0]) if ARGS else 3000
CALLGRIND = "--callgrind" in sys.argv
INSIDE = os.environ.get("SLUICE_BENCH_INSIDE_CALLGRIND")  # the path to count, in valgrind
if CALLGRIND or INSIDE:
    os.environ["ENRICHMENT_PUBLISH_LINGER_MS"] = "3600000"

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from shapes import BENCH_PLAN, ENRICH_BODY  # noqa: E402

from apps.accounts.models import Plan  # noqa: E402
from apps.accounts.selectors import (  # noqa: E402
    api_key_by_raw,
    key_accepts_work_params,
    key_accepts_work_sql,
)
from apps.accounts.services import account_create  # noqa: E402
from apps.core.db import insert_one  # noqa: E402
from apps.enrichment.models import Contact  # noqa: E402
from apps.enrichment.services import contacts_publish  # noqa: E402
from config.wsgi import application  # noqa: E402

BODY = json.dumps(ENRICH_BODY).encode()
PATHS = {"healthz": ("GET", "/healthz", b""), "enrich": ("POST", "/api/v1/enrich", BODY)}


def sandbox_key() -> str:
    plan, _ = Plan.objects.update_or_create(code="bench", defaults=BENCH_PLAN)
    return account_create(name="bench", plan_code=plan.code, credits=0).key.raw_key


def requester(name: str, key: str) -> Callable[[], None]:
    method, path, body = PATHS[name]
    expected = "202" if method == "POST" else "200"

    def call() -> None:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Bearer {key}",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        }
        status: list[str] = []
        chunks = application(environ, lambda s, headers, *exc: status.append(s))
        b"".join(chunks)
        chunks.close()
        if not status[0].startswith(expected):
            raise SystemExit(f"{method} {path} answered {status[0]}")

    return call


def best_ms(fn: Callable[[], object], n: int, clock: Callable[[], float]) -> float:
    for _ in range(min(300, n)):  # connections, caches, prepared statements
        fn()
    runs = []
    for _ in range(3):
        start = clock()
        for _ in range(n):
            fn()
        runs.append((clock() - start) * 1000 / n)
    return round(min(runs), 4)


def backend_cpu() -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def insert_cost(key: str, *, prepared: bool) -> float:
    """PostgreSQL CPU ms per intake INSERT (the statement single enrich sends)."""
    api_key = api_key_by_raw(key)
    configured = settings.DATABASE_PREPARE_THRESHOLD
    settings.DATABASE_PREPARE_THRESHOLD = configured if prepared else None
    where, params = key_accepts_work_sql(), key_accepts_work_params(api_key)

    def insert() -> None:
        row = Contact(account=api_key.account, api_key=api_key, first_name="A", last_name="B")
        insert_one(row, where=where, params=params)

    try:
        return best_ms(insert, N, backend_cpu)
    finally:
        settings.DATABASE_PREPARE_THRESHOLD = configured


def publish_cost() -> float:
    """CPU ms of one ``run_contacts`` publish of 11 ids (nothing consumes them here: the
    messages are dropped from the queue afterwards)."""
    ids = [str(uuid.uuid4()) for _ in range(11)]
    try:
        return best_ms(lambda: contacts_publish(ids), N, time.process_time)
    finally:
        redis.Redis.from_url(settings.REDIS_URL).delete("enrichment")


def count_instructions(name: str) -> float:
    """Instructions per request, counted by callgrind around N requests only."""
    run = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            str(N),
        ],
        env={**os.environ, "SLUICE_BENCH_INSIDE_CALLGRIND": name},
        capture_output=True,
        text=True,
        check=True,
    )
    collected = re.search(r"Collected : ([\d,]+)", run.stderr)
    return round(int(collected.group(1).replace(",", "")) / N / 1e6, 4)


def inside_callgrind(name: str) -> None:
    call = requester(name, sandbox_key())
    for _ in range(300):
        call()
    control = ["callgrind_control", "-i"]
    subprocess.run([*control, "on", str(os.getpid())], check=True, capture_output=True)
    for _ in range(N):
        call()
    subprocess.run([*control, "off", str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    if INSIDE:
        inside_callgrind(INSIDE)
        return
    key = sandbox_key()
    result: dict[str, object] = {
        "requests": N,
        "cpu_ms_per_request": {
            name: best_ms(requester(name, key), N, time.process_time) for name in PATHS
        },
        "postgres_cpu_ms_per_intake_insert": {
            "unprepared": insert_cost(key, prepared=False),
            "prepared": insert_cost(key, prepared=True),
        },
        "cpu_ms_per_publish_of_11_ids": publish_cost(),
    }
    if CALLGRIND:
        result["million_instructions_per_request"] = {
            name: count_instructions(name) for name in PATHS
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
