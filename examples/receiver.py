"""A minimal Sluice webhook receiver: verify, deduplicate, answer 2xx fast.

    pip install standardwebhooks          # (or: pip install ./clients/python)
    SLUICE_WEBHOOK_SECRET=whsec_... python examples/receiver.py --port 3000

Subscribe it with ``POST /api/v1/webhooks {"url": "http://<this host>:3000/hooks"}`` (the
answer's ``secret`` is SLUICE_WEBHOOK_SECRET), or let ``sluice listen --forward-to
http://127.0.0.1:3000/hooks`` do that for you while you develop. Each verified event is
printed as one JSON line. Only the standard library and ``standardwebhooks``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# Sluice retries a delivery until it gets a 2xx, with the same webhook-id every time: keep
# the ids already handled (a database table in a real application) and skip repeats.
SEEN: OrderedDict[str, None] = OrderedDict()
SEEN_MAX = 10_000


def handle(event: dict) -> None:
    """Your code: here it prints. Keep it fast (or queue the work): Sluice waits at most
    WEBHOOK_READ_TIMEOUT (15 s) for the answer."""
    data = event.get("data") or {}
    result = data.get("result") or {}
    print(
        json.dumps(
            {
                "id": event["id"],
                "type": event["type"],
                "sandbox": event.get("sandbox"),
                "enrichment_id": data.get("enrichment_id"),
                "result": result.get("status"),
                "email": result.get("email"),
                "custom": data.get("custom"),
            }
        ),
        flush=True,
    )


def make_handler(webhook: Webhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                # The raw bytes, before any JSON parsing: the signature covers exactly them.
                event = webhook.verify(body, dict(self.headers.items()))
            except WebhookVerificationError as exc:
                print(f"rejected: {exc}", file=sys.stderr, flush=True)
                self._answer(400)
                return
            if event["id"] not in SEEN:
                SEEN[event["id"]] = None
                if len(SEEN) > SEEN_MAX:
                    SEEN.popitem(last=False)
                handle(event)
            self._answer(200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    secret = os.environ.get("SLUICE_WEBHOOK_SECRET")
    if not secret:
        sys.exit("Set SLUICE_WEBHOOK_SECRET to the endpoint's whsec_… secret.")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Webhook(secret)))
    print(f"listening on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it
        server.serve_forever()


if __name__ == "__main__":
    main()
