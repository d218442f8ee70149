"""The bare sender of bench/webhooks.py: the floor a webhooks process is compared with.

A plain Python script (no Django, no database, no broker): ``THREADS`` threads, each with its
own kept-alive ``requests.Session``, POST the given bodies to the given URLs, each request
signed as the engine signs it (``apps.webhooks.signing.signed_headers``, a standalone module,
with a fresh ``webhook-timestamp``) and carrying the same headers as
``deliveries.delivery_request``; the answer is read as ``transport.http_post`` reads it
(``stream=True``, status, ``Retry-After`` on 429/503, the first 1 KB of the body), with the
same timeouts and no redirects. Sessions ignore environment proxies, as the engine's do.

Usage: bare_sender.py JOBS.json THREADS
JOBS.json: {"warm_url": "...", "jobs": [{"url", "secret", "msg_id", "type", "delivery",
"body"}, ...]}. Each thread first sends one warm-up request to ``warm_url`` (opening its
connection, as the webhooks process's are open from earlier rounds), then the script prints
``ready`` and waits for ``go`` on stdin; it then sends every job once and prints one JSON line:
``started``/``finished`` (``time.time()``), ``cpu_seconds`` of the sending, status counts,
errors.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.webhooks.signing import signed_headers  # stdlib only, no Django

USER_AGENT = "Sluice-Webhooks/1.0"  # deliveries.USER_AGENT
TIMEOUT = (5.0, 15.0)  # WEBHOOK_CONNECT_TIMEOUT, WEBHOOK_READ_TIMEOUT
SNIPPET = 1024  # transport.RESPONSE_SNIPPET_BYTES


def post(session: requests.Session, job: dict) -> int:
    body = job["body"].encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Sluice-Event": job["type"],
        "X-Sluice-Delivery": job["delivery"],
        **signed_headers(
            secrets_in_use=[job["secret"]],
            msg_id=job["msg_id"],
            timestamp=int(time.time()),
            body=body,
        ),
    }
    with session.post(
        job["url"],
        data=body,
        headers=headers,
        timeout=TIMEOUT,
        allow_redirects=False,
        stream=True,
    ) as response:
        status = response.status_code
        if status in (429, 503):
            response.headers.get("Retry-After")
        raw = response.raw.read(SNIPPET, decode_content=True) or b""
        raw[:SNIPPET].decode("utf-8", errors="replace")
        return status


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    threads_n = int(sys.argv[2])
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    for job in spec["jobs"]:
        jobs.put(job)
    statuses: Counter = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    warmed = threading.Barrier(threads_n + 1)
    go = threading.Event()

    def run() -> None:
        session = requests.Session()
        session.trust_env = False
        for attempt in range(5):  # a connect refused or reset under load: try again
            try:
                post(session, {**spec["jobs"][0], "url": spec["warm_url"]})
                break
            except requests.RequestException:
                time.sleep(0.1 * (attempt + 1))
        warmed.wait()
        go.wait()
        mine: Counter = Counter()
        while True:
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                break
            try:
                mine[post(session, job)] += 1
            except Exception as exc:  # counted, never fatal: the benchmark reports it
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
        with lock:
            statuses.update(mine)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    warmed.wait()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    cpu_before = os.times()
    started = time.time()
    go.set()
    for thread in threads:
        thread.join()
    finished = time.time()
    cpu_after = os.times()
    print(
        json.dumps(
            {
                "started": started,
                "finished": finished,
                "cpu_seconds": round(
                    (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system), 3
                ),
                "statuses": {str(k): v for k, v in statuses.items()},
                "errors": len(errors),
                "first_errors": errors[:3],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
