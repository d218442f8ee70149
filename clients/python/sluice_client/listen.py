"""``sluice listen``: a temporary webhook endpoint whose deliveries go to a local URL.

The CLI runs a small HTTP server, subscribes it as an endpoint (``POST /webhooks``), and for
each delivery checks the Standard Webhooks signature with the endpoint's secret, forwards the
very bytes and the signature headers to ``--forward-to``, answers Sluice with the forwarded
status (502 when the local URL cannot be reached, so Sluice retries) and reports it. The
endpoint is deleted on exit. Sluice's workers must be able to reach the server's address
(``--public-url`` when it is not the bound one); where they cannot, poll with
``sluice events tail`` instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from .client import Sluice
from .webhooks import WebhookVerificationError, verify_webhook

# Headers passed on to the local URL: enough for it to verify the signature itself.
FORWARDED = (
    "content-type",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-sluice-signature",
    "x-sluice-event",
    "x-sluice-delivery",
    "x-sluice-test",
)


@dataclass
class Forwarded:
    """What one delivery became: printed by the CLI."""

    at: float
    event_type: str
    event_id: str
    delivery_id: str
    verified: bool
    status: int | None  # the local URL's answer; None when it could not be reached
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "type": self.event_type,
            "id": self.event_id,
            "delivery": self.delivery_id,
            "verified": self.verified,
            "status": self.status,
            "error": self.error,
        }


class Listener:
    def __init__(
        self,
        client: Sluice,
        *,
        forward_to: str,
        events: Sequence[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        on_delivery: Callable[[Forwarded], None] = lambda f: None,
        forward_timeout: float = 10.0,
        endpoint_id: str | None = None,
        secret: str | None = None,
    ) -> None:
        self.client = client
        self.forward_to = forward_to
        self.events = list(events or [])
        self.on_delivery = on_delivery
        self.forward_timeout = forward_timeout
        self.endpoint: dict[str, Any] | None = None
        # An existing endpoint (already pointing at this machine, e.g. through a tunnel):
        # used as it is and kept on exit.
        self.given = (endpoint_id, secret) if endpoint_id else None
        if self.given and not secret:
            raise ValueError("an existing endpoint needs its secret (--secret)")
        self._session = requests.Session()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = listener.handle(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        bound_host, bound_port = self.server.server_address[:2]
        self.url = public_url or f"http://{bound_host}:{bound_port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> dict[str, Any]:
        """Serve, then subscribe: the endpoint (with its ``secret``)."""
        if self.given:
            endpoint_id, secret = self.given
            self.endpoint = {**self.client.get_webhook(endpoint_id), "secret": secret}
            self.url = self.endpoint["url"]
            self._thread.start()
            return self.endpoint
        self._thread.start()
        self.endpoint = self.client.create_webhook(
            self.url, events=self.events or None, description="sluice listen (temporary)"
        )
        return self.endpoint

    def stop(self) -> None:
        """Unsubscribe (the endpoint and its deliveries go; a given one stays), then stop
        serving."""
        try:
            if self.endpoint is not None and not self.given:
                self.client.delete_webhook(self.endpoint["id"])
                self.endpoint = None
        finally:
            self.server.shutdown()
            self.server.server_close()

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        assert self.endpoint is not None
        try:
            verify_webhook(body, headers, self.endpoint["secret"])
            verified = True
        except WebhookVerificationError:
            verified = False
        result = Forwarded(
            at=time.time(),
            event_type=headers.get("x-sluice-event", "?"),
            event_id=headers.get("webhook-id", "?"),
            delivery_id=headers.get("x-sluice-delivery", "?"),
            verified=verified,
            status=None,
        )
        if not verified:
            # Not from Sluice with this endpoint's secret: never passed on.
            result.error = "signature did not verify; not forwarded"
            self.on_delivery(result)
            return 400
        try:
            answer = self._session.post(
                self.forward_to,
                data=body,
                headers={k: v for k, v in headers.items() if k in FORWARDED},
                timeout=self.forward_timeout,
            )
            result.status = answer.status_code
        except requests.RequestException as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        self.on_delivery(result)
        return result.status if result.status is not None else 502
