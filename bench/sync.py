"""Synchronous enrich benchmark (issue 16): run by bench/sync.sh, which provides PostgreSQL,
Redis, ``SLUICE_VAR_DIR`` and the production settings.

The ``simulator`` (50 ms per call), ``worker`` and ``web`` processes are started from the
Procfile (bench/stack.py); a live key on a plan without rate limits, with credits enough for
every contact, so the real Hunter/Apollo/PDL adapters run against the simulator. For each
client count (8 and 32) gunicorn is started with ``WEB_THREADS`` and
``ENRICH_SYNC_MAX_WAITS`` such that the web processes together may hold one wait per client
(printed under ``settings.web``); then, alternated over the rounds (this machine's speed
drifts):

(a) sync: each client (a thread with its own ``requests.Session``) POSTs
    ``/api/v1/enrich/sync`` with a new person at a new domain each time, so the 30-day reuse
    of a past result never short-cuts the waterfall, and records latency and status. For a
    200 the waterfall's own time is the sum of its attempts' ``duration_ms`` and the overhead
    is latency minus that sum. A 202 is counted as ``wait_bound`` (answered before the
    timeout: its web process held its maximum of waits) or ``timeout``; that client then
    polls ``GET /contacts/{id}`` until the contact finishes, as a real client would, so it
    never has more than one contact in flight.
(b) async: the same clients POST ``/api/v1/enrich`` (latency and req/s of the 202s). The
    worker is paused (SIGSTOP) meanwhile and the queued messages dropped afterwards, so the
    thousands of contacts accepted never delay the next sync phase: this phase measures
    accepting work, as bench/api.sh does.

Where a 200's overhead goes (``split``, see ``phase_split``) comes from stamps on this
machine's one clock, none added to the product: the answer's ``created_at``/``finished_at``;
Redis ``MONITOR`` (the message published, handed to the worker); the simulator's log of each
Hunter/PDL call (``LOG_LEVEL=DEBUG`` for the simulator only); a LISTEN of our own on the
channel the finish NOTIFYs. During sync phases ``pg_stat_activity`` is sampled every 20 ms
(``postgres``: the mean number of backends per state, wait event and statement).

Before every phase the stack is idle (no message queued or unacknowledged, no contact leased).
Each phase is bounded: requests start until ``seconds`` have passed, a sync wait lasts at most
``BENCH_SYNC_TIMEOUT`` (10 s), a fallback poll at most 15 s more.
Usage: bench/sync.sh [seconds-per-phase] [rounds]
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.accounts.models import Plan  # noqa: E402
from apps.accounts.services import account_create  # noqa: E402
from apps.enrichment.models import Contact  # noqa: E402
from apps.enrichment.services.waiting import CHANNEL  # noqa: E402
from bench.shapes import BENCH_PLAN  # noqa: E402
from bench.stack import procfile_command, wait_until  # noqa: E402

# The steps a sync request's time is split into, in order (``split``).
SPLIT_STEPS = (
    "post_to_created",
    "created_to_published",
    "published_to_worker",
    "worker_to_first_call",
    "call_gaps",
    "last_call_to_finished",
    "finished_to_notified",
    "notified_to_answer",
)
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 15.0
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
CLIENTS = [int(c) for c in os.environ.get("BENCH_CLIENTS", "8,32").split(",")]
SYNC_TIMEOUT = float(os.environ.get("BENCH_SYNC_TIMEOUT", "10"))
KINDS = os.environ.get("BENCH_KINDS", "email").split(",")
# Live accounts the clients share out (one: every contact's hold and finish queue on one
# account row, as one tenant's traffic does).
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "1"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
LATENCY_MS = os.environ.setdefault("SIMULATOR_LATENCY_MS", "50")
WEB_PROCESSES = int(os.environ.get("WEB_CONCURRENCY", "2"))
POLL_CAP = 15.0  # seconds a client polls a 202'd contact after the phase's end
TARGET_P50_OVERHEAD_MS = 50.0
VAR = Path(os.environ["SLUICE_VAR_DIR"])
TAG = secrets.token_hex(3)  # this run's names and domains
SEQ = itertools.count()  # next() on a count is atomic under the GIL
QUEUE = "enrichment"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def r1(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def p50(values: list[float]) -> float | None:
    return r1(statistics.median(values)) if values else None


def p95(values: list[float]) -> float | None:
    return r1(percentile(values, 0.95))


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


# --- processes ------------------------------------------------------------------------------


@contextmanager
def environment(extra: dict[str, str]):  # type: ignore[no-untyped-def]
    """``os.environ`` with ``extra`` set, for procfile_command's ``${VAR:-default}``."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Process:
    """A Procfile process with variables of its own, logging to ``$SLUICE_VAR_DIR/<name>.log``."""

    def __init__(
        self, name: str, env: dict[str, str], *, extra: tuple[str, ...] = (), label: str = ""
    ) -> None:
        with environment(env):
            self.argv = procfile_command(name) + list(extra)
            child_env = dict(os.environ)
        self.name, self.env = label or name, env
        log_file = open(VAR / f"{self.name}.log", "ab")  # noqa: SIM115 - the child has its copy
        try:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=child_env, stdout=log_file, stderr=log_file
            )
        finally:
            log_file.close()
        self.paused = False

    @property
    def command(self) -> str:
        shown = " ".join(f"{k}={v}" for k, v in self.env.items() if k != "PROVIDER_SIMULATOR_URL")
        return f"{shown} {' '.join(self.argv[1:])}".strip()

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc.poll() is None


def web_shape(clients: int) -> tuple[int, int]:
    """(threads, waits) per gunicorn process for this many clients: ``BENCH_WEB_<clients>``
    as "threads,waits", else room for one wait per client across the processes, plus four
    threads for everything else."""
    given = os.environ.get(f"BENCH_WEB_{clients}")
    if given:
        threads, waits = (int(x) for x in given.split(","))
        return threads, waits
    waits = math.ceil(clients / WEB_PROCESSES)
    return waits + 4, waits


# --- the clients ------------------------------------------------------------------------------

FIRST_NAMES = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Claude")


def new_contact() -> dict:
    """A person nobody asked for before: a new last name at a new domain."""
    n = next(SEQ)
    body = {
        "first_name": FIRST_NAMES[n % len(FIRST_NAMES)],
        "last_name": f"Bench{n}x{TAG}",
        "domain": f"d{n}-{TAG}.com",
        "enrichment_type": KINDS,
    }
    if "phone" in KINDS or "personal_email" in KINDS:
        body["linkedin_url"] = f"https://www.linkedin.com/in/bench-{n}-{TAG}"
        body["phone_country_codes"] = ["US", "GB", "DE", "FR"]
    return body


def new_session(key: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: never a proxy from the environment
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def sync_client(base: str, key: str, deadline: float, out: list[dict]) -> None:
    session = new_session(key)
    while time.monotonic() < deadline:
        body = new_contact()
        sent = time.time()
        started = time.perf_counter()
        try:
            response = session.post(
                f"{base}/api/v1/enrich/sync",
                json=body | {"timeout": SYNC_TIMEOUT},
                timeout=SYNC_TIMEOUT + 30,
            )
        except requests.RequestException as exc:
            out.append({"status": "error", "error": repr(exc)[:200], "done": time.monotonic()})
            time.sleep(0.1)
            continue
        latency = (time.perf_counter() - started) * 1000
        record: dict = {
            "status": response.status_code,
            "latency_ms": latency,
            "sent": sent,
            "received": sent + latency / 1000,
            "done": time.monotonic(),
            "last_name": body["last_name"],
        }
        if response.status_code == 200:
            data = response.json()
            attempts = data.get("attempts") or []
            record |= {
                "id": data.get("enrichment_id"),
                "calls_ms": sum(a["duration_ms"] for a in attempts),
                "attempts": [(a["provider"], a["outcome"], a["duration_ms"]) for a in attempts],
                "created_at": ts(data.get("created_at")),
                "finished_at": ts(data.get("finished_at")),
                "result": (data.get("result") or {}).get("status"),
            }
        elif response.status_code == 202:
            # Answered well before the timeout: this process held its maximum of waits.
            record["reason"] = "timeout" if latency >= SYNC_TIMEOUT * 1000 - 100 else "wait_bound"
            record["finished_after_ms"] = follow(session, base, response.json(), sent, deadline)
        else:
            record["error"] = response.text[:200]
        out.append(record)


def follow(session: requests.Session, base: str, accepted: dict, sent: float, deadline: float):
    """Poll a 202'd contact until it finished (ms from the POST), or None past the cap."""
    url = f"{base}/api/v1/contacts/{accepted['enrichment_id']}"
    cap = deadline + POLL_CAP
    while time.monotonic() < cap:
        try:
            body = session.get(url, timeout=10).json()
        except (requests.RequestException, ValueError):
            body = {}
        if body.get("status") == "finished":
            return (time.time() - sent) * 1000
        time.sleep(0.1)
    return None


def async_client(base: str, key: str, deadline: float, out: list[dict]) -> None:
    session = new_session(key)
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            response = session.post(f"{base}/api/v1/enrich", json=new_contact(), timeout=30)
        except requests.RequestException as exc:
            out.append({"status": "error", "error": repr(exc)[:200], "done": time.monotonic()})
            time.sleep(0.1)
            continue
        record = {
            "status": response.status_code,
            "latency_ms": (time.perf_counter() - started) * 1000,
            "done": time.monotonic(),
        }
        if response.status_code != 202:
            record["error"] = response.text[:200]
        out.append(record)


# The stack's processes by group, each with all its descendants (gunicorn's workers,
# PostgreSQL's backends); ``main`` fills it in, the web entry on each gunicorn start.
STACK: dict[str, int] = {}


def _read_pid(path: str | None) -> int | None:
    try:
        return int(Path(path).read_text().split()[0]) if path else None
    except (OSError, ValueError, IndexError):
        return None


def stack_cpu() -> dict[str, float]:
    """CPU seconds used so far by each group in STACK, and by this process (``bench``)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parent[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
    group_of: dict[int, str] = {pid: name for name, pid in STACK.items()}
    used = dict.fromkeys(STACK, 0)
    for pid in ticks:
        walk, seen = pid, 0
        while walk and walk not in group_of and seen < 64:
            walk, seen = parent.get(walk, 0), seen + 1
        if walk in group_of:
            used[group_of[walk]] += ticks[pid]
    seconds = {name: t / os.sysconf("SC_CLK_TCK") for name, t in used.items()}
    own = resource.getrusage(resource.RUSAGE_SELF)
    seconds["bench"] = own.ru_utime + own.ru_stime  # the clients and the probes
    return seconds


def run_clients(
    target, base: str, keys: list[str], clients: int, seconds: float
) -> tuple[list, dict]:
    """``clients`` threads running ``target`` for ``seconds`` (client i with key i modulo
    their number); their records, and the phase's elapsed time, load average and CPU per
    request of each of the stack's processes (and of this one), with how many of the
    machine's cores they kept busy together."""
    outs: list[list[dict]] = [[] for _ in range(clients)]
    load = os.getloadavg()[0]
    cpu = stack_cpu()
    started = time.monotonic()
    deadline = started + seconds
    threads = [
        threading.Thread(
            target=target, args=(base, keys[i % len(keys)], deadline, out), daemon=True
        )
        for i, out in enumerate(outs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + SYNC_TIMEOUT + POLL_CAP + 60)
    after = stack_cpu()
    wall = time.monotonic() - started
    records = [r for out in outs for r in out]
    elapsed = max((r["done"] for r in records), default=time.monotonic()) - started
    used = {name: after[name] - cpu.get(name, 0.0) for name in after}
    return records, {
        "elapsed_s": round(elapsed, 2),
        "load_avg_1m": round(load, 2),
        "cpu_ms_per_request": {
            name: round(t * 1000 / max(1, len(records)), 2) for name, t in used.items()
        },
        "stack_cores_busy": round(sum(used.values()) / wall, 2),
    }


# --- the stack's state --------------------------------------------------------------------------


def idle(queue: redis.Redis) -> bool:
    """No message queued or taken but unacknowledged, and no contact leased by a worker."""
    return (
        queue.llen(QUEUE) == 0
        and queue.hlen("unacked") == 0
        and not Contact.objects.filter(
            status=Contact.PENDING, lease_expires_at__gt=timezone.now()
        ).exists()
    )


def settle(queue: redis.Redis, timeout: float = 60) -> bool:
    """Idle for three looks in a row (0.1 s apart), within ``timeout`` seconds."""
    streak = [0]

    def calm() -> bool:
        streak[0] = streak[0] + 1 if idle(queue) else 0
        return streak[0] >= 3

    return wait_until(calm, timeout, interval=0.1)


class SimulatorTrace:
    """When each Hunter and PDL call ended, by the contact's last name, from the simulator's
    log (Apollo is a POST whose names are in the body, not in the logged request line)."""

    LINE = re.compile(r'"GET (/v2/email-finder\?\S+|/v5/person/enrich\?\S+) HTTP')

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.ends: dict[str, list[float]] = {}

    def read(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        cut = chunk.rfind(b"\n") + 1  # only whole lines
        self.offset += cut
        for raw in chunk[:cut].splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            match = self.LINE.search(line.get("msg", ""))
            if not match:
                continue
            query = parse_qs(urlsplit(match.group(1)).query)
            last = (query.get("last_name") or [""])[-1]
            if last:
                self.ends.setdefault(last, []).append(ts(line["ts"]))

    def calls(self, last_name: str) -> list[float]:
        return sorted(self.ends.get(last_name, []))


class QueueProbe:
    """Redis ``MONITOR``: when each contact's ``run_contacts`` message was published (LPUSH
    on the queue) and handed to the worker (kombu's HSET into ``unacked``: with acks late
    and a prefetch of one per task thread, when a task thread is about to take it)."""

    BODY = re.compile(r'"body": "([A-Za-z0-9+/=]+)"')
    UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

    def __init__(self, url: str) -> None:
        self.pushed: dict[str, float] = {}
        self.delivered: dict[str, float] = {}
        self.per_message: list[int] = []
        self._monitor = redis.Redis.from_url(url).monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                event = self._monitor.next_command()
                command = event["command"]
                if command.startswith(("LPUSH enrichment ", "RPUSH enrichment ")):
                    seen = self.pushed
                elif command.startswith("HSET unacked "):
                    seen = self.delivered
                else:
                    continue
                match = self.BODY.search(command)
                if not match:
                    continue
                ids = self.UUID.findall(base64.b64decode(match.group(1)).decode(errors="replace"))
                if seen is self.pushed:
                    self.per_message.append(len(ids))
                for contact_id in ids:
                    seen.setdefault(contact_id, event["time"])
        except Exception:  # the connection closed: the run is over
            return

    def close(self) -> None:
        with suppress(Exception):
            self._monitor.connection.disconnect()


class NotifyProbe:
    """A LISTEN of our own on the web processes' channel: when each finish's NOTIFY arrived
    (PostgreSQL delivers it on the finish transaction's commit)."""

    def __init__(self, url: str) -> None:
        self.heard: dict[str, float] = {}
        self._stop = threading.Event()
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"LISTEN {CHANNEL}")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for notify in self._conn.notifies(timeout=0.5):
                now = time.time()
                for contact_id in notify.payload.split(","):
                    self.heard.setdefault(contact_id, now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


class ActivityProbe:
    """During a sync phase, ``pg_stat_activity`` every 20 ms: how many of the stack's
    backends were, on average, in each (state, wait event, statement) class; a row lock
    queue shows as ``Lock:transactionid`` or ``Lock:tuple`` on the statement that waits."""

    SQL = (
        "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'cpu'), left(query, 70)"
        " FROM pg_stat_activity WHERE datname = current_database() AND backend_type ="
        " 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'"
        " AND query NOT LIKE 'LISTEN%'"
    )

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts: dict[str, int] = {}
        self._samples = 0

    def start(self) -> None:
        self._stop.clear()
        self._counts, self._samples = {}, 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.wait(0.02):
                rows = conn.execute(self.SQL).fetchall()
                self._samples += 1
                for state, wait, query in rows:
                    label = f"{state} {wait} {' '.join(query.split())}"
                    self._counts[label] = self._counts.get(label, 0) + 1

    def stop(self, top: int = 8) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        samples = max(1, self._samples)
        busiest = sorted(self._counts.items(), key=lambda kv: -kv[1])[:top]
        return {
            "samples": self._samples,
            "mean_active_backends": round(sum(self._counts.values()) / samples, 2),
            "mean_backends_by_statement": {k: round(n / samples, 2) for k, n in busiest},
        }


@dataclass
class Probes:
    trace: SimulatorTrace
    queue: QueueProbe
    notify: NotifyProbe
    activity: ActivityProbe


# --- summaries ----------------------------------------------------------------------------------


def phase_split(ok: list[dict], probes: Probes) -> dict:
    """Where each 200's time went, in order (ms; p50 and p95 over the phase's 200s): every
    stamp is on this machine's one clock. ``post_to_created`` is the web process up to
    the INSERT (``created_at``); ``created_to_published`` its commit and the publish linger;
    ``published_to_worker`` the message's wait for a worker task thread; ``worker_to_first_call``
    the task's claim, load and credit hold; ``call_gaps`` the waterfall's own time between
    its calls (last call's end - first call's start - sum of ``duration_ms``; when the last
    call is Hunter or PDL, whose requests the simulator logs with the name);
    ``last_call_to_finished`` the waterfall's return until the finish stamps ``finished_at``
    (as its transaction starts); ``finished_to_notified`` that transaction up to its commit;
    ``notified_to_answer`` the web thread's wake-up, its reads and the answer."""
    parts: dict[str, list[float]] = {key: [] for key in SPLIT_STEPS}
    for r in ok:
        created, finished = r["created_at"], r["finished_at"]
        pushed, delivered = probes.queue.pushed.get(r["id"]), probes.queue.delivered.get(r["id"])
        heard = probes.notify.heard.get(r["id"])
        calls = probes.trace.calls(r["last_name"])
        first = last = None
        if calls and r["attempts"] and r["attempts"][0][0] == "hunter":
            first = calls[0] - r["attempts"][0][2] / 1000
        if calls and r["attempts"] and r["attempts"][-1][0] in ("hunter", "pdl"):
            last = calls[-1]
        stamps = {
            "post_to_created": (r["sent"], created),
            "created_to_published": (created, pushed),
            "published_to_worker": (pushed, delivered),
            "worker_to_first_call": (delivered, first),
            "last_call_to_finished": (last, finished),
            "finished_to_notified": (finished, heard),
            "notified_to_answer": (heard, r["received"]),
        }
        for key, (a, b) in stamps.items():
            if a is not None and b is not None:
                parts[key].append((b - a) * 1000)
        if first is not None and last is not None:
            parts["call_gaps"].append((last - first) * 1000 - r["calls_ms"])
    split: dict = {}
    for key, values in parts.items():
        split[f"{key}_p50_ms"] = p50(values)
        split[f"{key}_p95_ms"] = p95(values)
    split["measured"] = {key: len(values) for key, values in parts.items()}
    return split


def sync_summary(records: list[dict], meta: dict, probes: Probes, messages_before: int) -> dict:
    ok = [r for r in records if r["status"] == 200]
    accepted = [r for r in records if r["status"] == 202]
    other = [r for r in records if r["status"] not in (200, 202)]
    elapsed = meta["elapsed_s"]
    latency = [r["latency_ms"] for r in ok]
    overhead = [r["latency_ms"] - r["calls_ms"] for r in ok]
    followed = [r["finished_after_ms"] for r in accepted if r.get("finished_after_ms")]
    results: dict[str, int] = {}
    for r in ok:
        results[r["result"]] = results.get(r["result"], 0) + 1
    per_message = [n for n in probes.queue.per_message[messages_before:] if n]
    return {
        **meta,
        "requests": len(records),
        "requests_per_s": round(len(records) / elapsed, 1) if elapsed else None,
        "ok_200_per_s": round(len(ok) / elapsed, 1) if elapsed else None,
        "status_200": len(ok),
        "status_202": len(accepted),
        "status_202_wait_bound": sum(1 for r in accepted if r["reason"] == "wait_bound"),
        "status_202_timeout": sum(1 for r in accepted if r["reason"] == "timeout"),
        "status_other": len(other),
        "other_samples": [r.get("error") for r in other[:3]],
        "results": results,
        "latency_p50_ms": p50(latency),
        "latency_p95_ms": p95(latency),
        "overhead_p50_ms": p50(overhead),
        "overhead_p95_ms": p95(overhead),
        "waterfall_p50_ms": p50([r["calls_ms"] for r in ok]),
        "calls_per_contact": (
            round(sum(len(r["attempts"]) for r in ok) / len(ok), 2) if ok else None
        ),
        "contacts_per_message": (
            round(sum(per_message) / len(per_message), 2) if per_message else None
        ),
        "split": phase_split(ok, probes),
        "after_202_finished_p50_ms": p50(followed),
    }


def async_summary(records: list[dict], meta: dict) -> dict:
    accepted = [r for r in records if r["status"] == 202]
    other = [r for r in records if r["status"] != 202]
    elapsed = meta["elapsed_s"]
    latency = [r["latency_ms"] for r in accepted]
    return {
        **meta,
        "requests": len(records),
        "accepted_202_per_s": round(len(accepted) / elapsed, 1) if elapsed else None,
        "status_202": len(accepted),
        "status_other": len(other),
        "other_samples": [r.get("error") for r in other[:3]],
        "latency_p50_ms": p50(latency),
        "latency_p95_ms": p95(latency),
    }


SUMMARY_KEYS = {
    "sync": (
        "requests_per_s",
        "ok_200_per_s",
        "latency_p50_ms",
        "latency_p95_ms",
        "overhead_p50_ms",
        "overhead_p95_ms",
        "waterfall_p50_ms",
    ),
    "async": ("accepted_202_per_s", "latency_p50_ms", "latency_p95_ms"),
}
SPLIT_KEYS = tuple(f"{key}_p50_ms" for key in SPLIT_STEPS)


def medians(rounds: list[dict], clients: int) -> dict:
    out: dict = {}
    for kind, keys in SUMMARY_KEYS.items():
        phases = [r[kind] for r in rounds if r["clients"] == clients]
        part = {
            key: r1(statistics.median(v))
            for key in keys
            if (v := [p[key] for p in phases if p.get(key) is not None])
        }
        if kind == "sync":
            split = {}
            for key in SPLIT_KEYS:
                values = [p["split"][key] for p in phases if p["split"].get(key) is not None]
                if values:
                    split[key] = r1(statistics.median(values))
            part["split"] = split
            for key in ("contacts_per_message", "calls_per_contact"):
                values = [p[key] for p in phases if p.get(key) is not None]
                if values:
                    part[key] = r1(statistics.median(values))
            for key in (
                "status_200",
                "status_202",
                "status_202_wait_bound",
                "status_202_timeout",
                "status_other",
            ):
                part[f"{key}_total"] = sum(p[key] for p in phases)
        else:
            part["status_202_total"] = sum(p["status_202"] for p in phases)
            part["status_other_total"] = sum(p["status_other"] for p in phases)
        groups = {name for p in phases for name in p["cpu_ms_per_request"]}
        part["cpu_ms_per_request"] = {
            name: round(statistics.median(p["cpu_ms_per_request"].get(name, 0) for p in phases), 2)
            for name in sorted(groups)
        }
        part["stack_cores_busy"] = r1(statistics.median(p["stack_cores_busy"] for p in phases))
        part["load_avg_1m"] = r1(statistics.median(p["load_avg_1m"] for p in phases))
        out[kind] = part
    return out


# --- the run ------------------------------------------------------------------------------------


def wait_http(url: str, timeout: float) -> None:
    session = requests.Session()
    session.trust_env = False

    def up() -> bool:
        try:
            return session.get(url, timeout=1).ok
        except requests.RequestException:
            return False

    if not wait_until(up, timeout, interval=0.2):
        raise SystemExit(f"{url} did not come up within {timeout:g} s")


def start_web(clients: int, port: int) -> tuple[Process, dict]:
    threads, waits = web_shape(clients)
    web = Process(
        "web",
        {
            "BIND_HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_THREADS": str(threads),
            "ENRICH_SYNC_MAX_WAITS": str(waits),
        },
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", 60)
    STACK["web"] = web.proc.pid
    shape = {
        "clients": clients,
        "web_processes": WEB_PROCESSES,
        "WEB_THREADS": threads,
        "ENRICH_SYNC_MAX_WAITS": waits,
        "waits_in_all": waits * WEB_PROCESSES,
        "command": web.command,
    }
    return web, shape


def main() -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    Plan.objects.update_or_create(code="bench", defaults=BENCH_PLAN)
    # Far more credits than any run spends (email 1 credit per VERIFIED contact).
    keys = [
        account_create(
            name=f"bench-sync-{n}", plan_code="bench", credits=10_000_000, mode="live"
        ).key.raw_key
        for n in range(ACCOUNTS)
    ]
    queue = redis.Redis.from_url(os.environ["REDIS_URL"])

    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    processes: list[Process] = []
    web: Process | None = None
    probes: Probes | None = None
    try:
        simulator = Process(
            "simulator",
            {
                "SIMULATOR_HOST": "127.0.0.1",
                "SIMULATOR_PORT": str(sim_port),
                "SIMULATOR_LATENCY_MS": LATENCY_MS,
                "LOG_LEVEL": "DEBUG",  # a line per call, with its time: SimulatorTrace
            },
        )
        processes.append(simulator)
        wait_http(f"{sim_url}/healthz", 30)
        # BENCH_WORKERS > 1: more `worker` processes, as a Procfile runner's `worker=N`
        # (each with its own node name).
        workers = [Process("worker", {"PROVIDER_SIMULATOR_URL": sim_url})]
        for n in range(2, WORKERS + 1):
            workers.append(
                Process(
                    "worker",
                    {"PROVIDER_SIMULATOR_URL": sim_url},
                    extra=("-n", f"enrichment{n}@%h"),
                    label=f"worker{n}",
                )
            )
        worker = workers[0]
        processes.extend(workers)
        STACK.update(simulator=simulator.proc.pid)
        STACK.update({w.name: w.proc.pid for w in workers})
        for name, pid_file in (
            ("postgres", f"{os.environ.get('SLUICE_PG_DATA', '')}/postmaster.pid"),
            ("redis", f"{os.environ.get('SLUICE_REDIS_DIR', '')}/redis.pid"),
        ):
            if pid := _read_pid(pid_file):
                STACK[name] = pid
        probes = Probes(
            trace=SimulatorTrace(VAR / "simulator.log"),
            queue=QueueProbe(os.environ["REDIS_URL"]),
            notify=NotifyProbe(os.environ["DATABASE_URL"]),
            activity=ActivityProbe(os.environ["DATABASE_URL"]),
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        shapes: dict[int, dict] = {}
        rounds: list[dict] = []
        for round_no in range(ROUNDS):
            for clients in CLIENTS:
                web, shape = start_web(clients, port)
                shapes[clients] = shape
                # Warm-up (not counted): every web thread's database connection, each web
                # process's listener, the worker's pool and its sessions to the simulator.
                warm, _ = run_clients(sync_client, base, keys, clients, 3)
                if not any(r["status"] == 200 for r in warm):
                    raise SystemExit(f"no 200 in the warm-up: {warm[:3]}")
                assert settle(queue), "the stack did not go idle after the warm-up"
                probes.trace.read()

                before = len(probes.queue.per_message)
                probes.activity.start()
                records, meta = run_clients(sync_client, base, keys, clients, SECONDS)
                meta["postgres"] = probes.activity.stop()
                time.sleep(0.2)  # the probes' last lines
                probes.trace.read()
                sync = sync_summary(records, meta, probes, before)
                log(
                    f"round {round_no + 1} clients {clients} sync: {sync['requests_per_s']} req/s,"
                    f" p50 {sync['latency_p50_ms']} ms, overhead p50 {sync['overhead_p50_ms']}"
                    f" p95 {sync['overhead_p95_ms']} ms, 200/202/other {sync['status_200']}/"
                    f"{sync['status_202']}/{sync['status_other']}, load {meta['load_avg_1m']}"
                )
                assert settle(queue), "the stack did not go idle after the sync phase"

                for w in workers:
                    w.pause()
                try:
                    records, meta = run_clients(async_client, base, keys, clients, SECONDS)
                    time.sleep(0.5)  # the web processes' last publish linger
                    queue.delete(QUEUE)  # accepted, never run: they would delay the next phase
                finally:
                    for w in workers:
                        w.resume()
                asynch = async_summary(records, meta)
                log(
                    f"round {round_no + 1} clients {clients} async: "
                    f"{asynch['accepted_202_per_s']} req/s, p50 {asynch['latency_p50_ms']} ms,"
                    f" other {asynch['status_other']}"
                )
                # The message the paused worker had already been handed runs now.
                assert settle(queue), "the stack did not go idle after the async phase"
                rounds.append(
                    {"round": round_no + 1, "clients": clients, "sync": sync, "async": asynch}
                )
                web.stop()
                web = None
        for proc in processes:
            assert proc.alive(), f"{proc.name} exited (see its log in {VAR})"
    finally:
        if probes is not None:
            probes.queue.close()
            probes.notify.close()
        if web is not None:
            web.stop()
        for proc in reversed(processes):
            proc.stop()

    summary = {str(c): medians(rounds, c) for c in CLIENTS}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    result = {
        "command": f"bench/sync.sh {SECONDS:g} {ROUNDS}",
        "commit": commit or None,
        "seconds_per_phase": SECONDS,
        "rounds": ROUNDS,
        "clients": CLIENTS,
        "sync_timeout_s": SYNC_TIMEOUT,
        "kinds": KINDS,
        "accounts": ACCOUNTS,
        "simulator_latency_ms": float(LATENCY_MS),
        "settings": {
            "web": [shapes[c] for c in CLIENTS],
            "worker": worker.command,
            "workers": WORKERS,
            "WORKER_CONCURRENCY": int(os.environ.get("WORKER_CONCURRENCY", "4")),
            "ENRICHMENT_CONCURRENCY": settings.ENRICHMENT_CONCURRENCY,
            "ENRICHMENT_PUBLISH_LINGER_MS": settings.ENRICHMENT_PUBLISH_LINGER_MS,
            "database": "postgresql",
            "broker": "redis",
        },
        "medians": summary,
        "target": {
            "overhead_p50_ms_at_most": TARGET_P50_OVERHEAD_MS,
            "met": {
                str(c): (summary[str(c)]["sync"].get("overhead_p50_ms") or math.inf)
                <= TARGET_P50_OVERHEAD_MS
                for c in CLIENTS
            },
        },
        "per_round": rounds,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
