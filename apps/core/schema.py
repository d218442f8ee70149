"""OpenAPI post-processing: the guard headers every operation shares (docs/guards.md)."""

from __future__ import annotations

from typing import Any

IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": (
        "Retry safely: for 24 h the same key and body return the original response with "
        "`Idempotent-Replayed: true`; a different body is 422 `idempotency_key_reused`."
    ),
}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Limit of the window closest to exhaustion (see X-RateLimit-Window)",
    "X-RateLimit-Remaining": "Requests left in that window",
    "X-RateLimit-Reset": "Unix time (seconds) at which that window restarts",
}


def add_guard_headers(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`` entry: Idempotency-Key on every POST
    under the API, X-RateLimit-* on every response of an authenticated operation."""
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or not operation.get("security"):
                continue
            if method == "post":
                operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
            for status, response in operation.get("responses", {}).items():
                if status == "401" or not isinstance(response, dict) or "$ref" in response:
                    continue
                headers = response.setdefault("headers", {})
                for name, description in RATE_LIMIT_HEADERS.items():
                    headers.setdefault(
                        name, {"schema": {"type": "integer"}, "description": description}
                    )
    return result
