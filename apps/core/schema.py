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


def undouble_request_names(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``COMPONENT_SPLIT_REQUEST`` appends ``Request`` to a request serializer's component
    name, so ``EnrichRequestSerializer`` became ``EnrichRequest`` + ``Request``: drop the second one
    (and rewrite every ``$ref``) unless that name is already taken."""
    schemas = result.get("components", {}).get("schemas", {})
    renames = {
        name: name[: -len("Request")]
        for name in schemas
        if name.endswith("RequestRequest") and name[: -len("Request")] not in schemas
    }
    if not renames:
        return result
    result["components"]["schemas"] = {renames.get(k, k): v for k, v in schemas.items()}
    refs = {
        f"#/components/schemas/{old}": f"#/components/schemas/{new}" for old, new in renames.items()
    }

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (refs.get(v, v) if k == "$ref" and isinstance(v, str) else rewrite(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return rewrite(result)


# Headers of every webhook delivery (apps/webhooks/services/deliveries.py, signing.py).
WEBHOOK_HEADERS: list[tuple[str, bool, str]] = [
    ("webhook-id", True, "The event id (evt_…), the same on every retry: deduplicate on it"),
    ("webhook-timestamp", True, "Unix seconds of this attempt (Standard Webhooks)"),
    (
        "webhook-signature",
        True,
        "`v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}` keyed with the "
        "secret's base64 part; several space-separated during a secret rotation",
    ),
    (
        "X-Sluice-Signature",
        True,
        "Hex HMAC-SHA256 of the body keyed with the whole secret (space-separated during a "
        "rotation)",
    ),
    ("X-Sluice-Event", True, "The event type"),
    ("X-Sluice-Delivery", True, "The delivery id (GET /webhooks/{id}/deliveries/{delivery_id})"),
    ("X-Sluice-Test", False, "`true` on a sample from POST /webhooks/{id}/test"),
]


def add_webhook_headers(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`` entry: the delivery headers on every
    webhook (``extend_schema`` on an ``OpenApiWebhook`` takes no parameters)."""
    for item in result.get("webhooks", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            operation["parameters"] = [
                {
                    "in": "header",
                    "name": name,
                    "required": required,
                    "schema": {"type": "string"},
                    "description": description,
                }
                for name, required, description in WEBHOOK_HEADERS
            ]
    return result


def simplify_nullable_any(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular's OpenAPI 3.1 form of a nullable free-form field (a ``JSONField``
    with ``allow_null``) is ``oneOf: [{}, {"type": "null"}]``, which no value satisfies
    exactly once (null matches both): it becomes the schema that accepts any value."""

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("oneOf") == [{}, {"type": "null"}]:
                node = {k: v for k, v in node.items() if k != "oneOf"}
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return rewrite(result)
