"""Intake API benchmark: run by bench/api.sh, which provides PostgreSQL, Redis and wrk.

Phases (each bounded in time): GET /healthz with wrk (the framework ceiling) and POST
/api/v1/enrich with wrk at 50 connections, alternated for ROUNDS rounds (this machine's
speed drifts by ±20 % from one minute to the next, so the ratio is taken per round and the
median reported), then bulk-of-100 POSTs from one client for latency. Each wrk phase also
reports the CPU time per request of gunicorn, PostgreSQL, Redis and wrk (from /proc). No
enrichment worker runs: this measures accepting work, not doing it; the enrichment queue's
length afterwards shows how many messages the accepted contacts cost.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests
from shapes import BENCH_PLAN, ENRICH_BODY

ROOT = Path(__file__).resolve().parents[1]
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def setup_account() -> str:
    """A bench plan without rate limits, and an account with a sandbox key on it."""
    code = (
        "from apps.accounts.models import Plan;"
        "from apps.accounts.services import account_create;"
        f"Plan.objects.update_or_create(code='bench', defaults={BENCH_PLAN!r});"
        "print(account_create(name='bench', plan_code='bench', credits=0).key.raw_key)"
    )
    return manage("shell", "-c", code).strip().splitlines()[-1]


def web_command(port: int) -> list[str]:
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    command = line.split(":", 1)[1].strip()
    env = {"BIND_HOST": "127.0.0.1", "PORT": str(port)}
    command = re.sub(
        r"\$\{(\w+):-([^}]*)\}",
        lambda m: env.get(m.group(1), os.environ.get(m.group(1), m.group(2))),
        command,
    )
    return [str(ROOT / ".venv/bin" / shlex.split(command)[0]), *shlex.split(command)[1:]]


CPU_GROUPS = ("gunicorn", "postgres", "redis-server", "wrk")


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by the running processes of each group in CPU_GROUPS (by process
    name) and, for wrk, by this script's finished children (wrk has exited when we look)."""
    ticks = dict.fromkeys(CPU_GROUPS, 0)
    for pid in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name in ticks:
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks[name] += int(fields[11]) + int(fields[12])  # utime + stime
    seconds = {name: t / os.sysconf("SC_CLK_TCK") for name, t in ticks.items()}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds["wrk"] = children.ru_utime + children.ru_stime
    return seconds


def wrk(url: str, *, connections: int, script: str | None = None) -> dict:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{SECONDS}s", "--latency"]
    if script:
        args += ["-s", script]
    before = cpu_seconds()
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    after = cpu_seconds()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    requests_done = rps * SECONDS
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        # Where the machine's CPU went, per request: the web server, the database...
        "cpu_ms_per_request": {
            name: round((after[name] - before[name]) * 1000 / requests_done, 3)
            for name in CPU_GROUPS
        },
    }


def main() -> None:
    manage("migrate", "--noinput")
    key = setup_account()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = subprocess.Popen(
        web_command(port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        body = ENRICH_BODY
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(json.dumps(body))}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {key}"\n'
            )
        # Warm every gunicorn worker's persistent database connection first.
        subprocess.run(
            ["wrk", "-t1", "-c8", "-d2s", "-s", lua.name, f"{base}/api/v1/enrich"],
            check=True,
            capture_output=True,
        )
        queue = redis.Redis.from_url(os.environ["REDIS_URL"])
        queue.delete("enrichment")
        rounds = []
        for _ in range(ROUNDS):
            health = wrk(f"{base}/healthz", connections=50)
            enrich = wrk(f"{base}/api/v1/enrich", connections=50, script=lua.name)
            rounds.append({"healthz": health, "enrich": enrich})
            # A failing endpoint is fast: never report its rate as throughput.
            assert health["non_2xx"] == enrich["non_2xx"] == 0, rounds
        time.sleep(1)  # the publisher threads' last linger
        accepted = sum(round(r["enrich"]["rps"] * SECONDS) for r in rounds)
        messages = queue.llen("enrichment")

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        bulk = {
            "enrichment_type": ["email"],
            "contacts": [
                {
                    "first_name": f"P{i}",
                    "last_name": "Doe",
                    "company_name": "Acme",
                    "custom": {"row": i},
                }
                for i in range(100)
            ],
        }
        latencies = []
        stop = time.monotonic() + SECONDS
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = session.post(f"{base}/api/v1/enrich/bulk", json=bulk, timeout=10)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.text
        latencies.sort()
        result = {
            "seconds_per_phase": SECONDS,
            "web": " ".join(web_command(port)[1:]),
            "rounds": rounds,
            "healthz_rps_median": statistics.median(r["healthz"]["rps"] for r in rounds),
            "enrich_rps_median": statistics.median(r["enrich"]["rps"] for r in rounds),
            "enrich_vs_healthz_median": round(
                statistics.median(r["enrich"]["rps"] / r["healthz"]["rps"] for r in rounds), 3
            ),
            "enrich_contacts_per_message": round(accepted / max(messages, 1), 1),
            "bulk100": {
                "requests": len(latencies),
                "p50_ms": round(statistics.median(latencies), 1),
                "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
            },
        }
        print(json.dumps(result, indent=2))
    finally:
        web.terminate()
        web.wait(10)


if __name__ == "__main__":
    main()
