"""Shared pieces of API views: JSON-object bodies, list query params, schema components."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request

from .errors import InvalidRequest, SluiceError
from .pagination import parse_limit


class BadRequest(SluiceError):
    status_code = 400
    code = "invalid_body"
    message = "The body must be a JSON object"


def json_object(request: Request) -> dict[str, Any]:
    """The request body as a dict: 400 for invalid JSON or any other JSON value."""
    if not request.body:
        raise ParseError()
    data = request.data
    if type(data) is not dict:
        raise BadRequest()
    nul_path = _find_nul(data, "")
    if nul_path is not None:
        # PostgreSQL can store U+0000 neither in text nor in jsonb.
        raise InvalidRequest(details={nul_path or "body": "Must not contain the NUL character."})
    return data


def _find_nul(value: Any, path: str) -> str | None:
    """The field path of the first string (or key) holding U+0000, else None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return child
            found = _find_nul(item, child)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_nul(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def list_params(request: Request) -> tuple[str | None, int]:
    return request.query_params.get("cursor") or None, parse_limit(
        request.query_params.get("limit")
    )


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    code = serializers.CharField()
    details = serializers.DictField(child=serializers.CharField())
    request_id = serializers.CharField()


class PaginationSerializer(serializers.Serializer):
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    text = {
        400: "Body is not valid JSON or not an object",
        401: "Missing, malformed, unknown or revoked API key",
        402: "Out of credits (live keys)",
        403: "Plan without API access, IP not allowed, or key lacks scope",
        404: "Unknown id, or it belongs to another account",
        409: "Duplicate resource, or idempotency key in flight",
        422: "Well-formed but invalid; details maps field paths to messages",
        429: "Rate limited; see Retry-After",
    }
    return {c: OpenApiResponse(ErrorSerializer, description=text[c]) for c in codes}


LIST_PARAMETERS = [
    OpenApiParameter("limit", int, description="Page size, 1-100 (default 25)"),
    OpenApiParameter("cursor", str, description="next_cursor from the previous page"),
]
