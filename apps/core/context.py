"""Per-request and per-task context (request id, enrichment id) carried into every log line."""

from __future__ import annotations

import contextvars
import secrets

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
enrichment_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "enrichment_id", default=None
)


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"
