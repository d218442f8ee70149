"""Shared pieces of API views: JSON-object bodies, list query params, schema components."""

from __future__ import annotations

import io
import json
import math
from typing import Any, NoReturn

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from .errors import InvalidRequest, SluiceError
from .pagination import parse_limit


class BadRequest(SluiceError):
    status_code = 400
    code = "invalid_body"
    message = "The body must be a JSON object"


# Deeper than any body the API takes (a bulk's contacts[i].custom is 6 levels): parsing and
# walking a deeper one would only cost stack, and past ~1000 levels raise RecursionError.
MAX_BODY_DEPTH = 32


def json_object(request: Request) -> dict[str, Any]:
    """The request body as a dict, whatever its declared Content-Type: 400 for invalid JSON or
    any other JSON value, 413 when too large, 422 for values the database cannot store (see
    ``_unstorable``)."""
    body = request.body
    if not body:
        raise ParseError()
    try:
        data, plain = _parsed_body(request, body)
    except RecursionError:
        raise ParseError("The body is nested too deeply")
    if type(data) is not dict:
        raise BadRequest()
    problem = None if plain else _unstorable(data)
    if problem is not None:
        path, message = problem
        # A lone surrogate in a key would also break the UTF-8 encoding of this very answer.
        path = path.encode("utf-8", "backslashreplace").decode("utf-8")
        raise InvalidRequest(details={path or "body": message})
    return data


class _Floats:
    """``parse_float`` hook: notes whether any number in the document is not finite."""

    __slots__ = ("finite",)

    def __init__(self) -> None:
        self.finite = True

    def __call__(self, text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            self.finite = False
        return value


def _parsed_body(request: Request, body: bytes) -> tuple[Any, bool]:
    """The parsed body, and whether it is plain: then ``_unstorable`` cannot find anything.

    A body declared as bare ``application/json`` (what JSON clients send) is parsed here
    directly, as REST framework's ``JSONParser`` would (UTF-8, no NaN/Infinity), without its
    stream wrappers; stricter in one respect: a body that ends inside a UTF-8 sequence is a
    400, where that parser's stream decoder drops the incomplete bytes.

    The body is plain when its text has no ``\\u`` escape (the only way JSON can spell U+0000
    or a lone surrogate), fewer brackets than ``MAX_BODY_DEPTH`` and only finite numbers:
    most bodies, which then skip the walk.
    """
    if request.content_type == "application/json":
        floats = _Floats()
        try:
            data = json.loads(
                body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=floats
            )
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None
        plain = (
            floats.finite
            and b"\\u" not in body
            and body.count(b"[") + body.count(b"{") < MAX_BODY_DEPTH
        )
        return data, plain
    try:
        return request.data, False
    except UnsupportedMediaType:
        # JSON is the only input format, so a body sent without a Content-Type or with
        # another one (`curl -d`, `requests.post(data=...)` send form or none) is read as JSON
        # all the same: valid JSON is accepted, anything else is the 400 SPEC §4 names.
        return JSONParser().parse(io.BytesIO(body), "application/json", {}), False


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _unstorable(data: dict[str, Any]) -> tuple[str, str] | None:
    """The field path and message of the first value PostgreSQL (or the response encoder)
    would refuse, else None: U+0000 (neither text nor jsonb holds it), lone surrogates (not
    UTF-8), non-finite numbers such as ``1e400`` (jsonb has no Infinity), and nesting deeper
    than ``MAX_BODY_DEPTH``. Iterative, so no body can exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                return path, problem
        elif isinstance(value, float):
            if not math.isfinite(value):
                return path, "Must be a finite number."
        elif isinstance(value, dict | list):
            if depth >= MAX_BODY_DEPTH:
                return path, f"Must be nested at most {MAX_BODY_DEPTH} levels deep."
            if isinstance(value, dict):
                children = []
                for key, item in value.items():
                    child = f"{path}.{key}" if path else str(key)
                    problem = _text_problem(key)
                    if problem:
                        return child, problem
                    children.append((item, child, depth + 1))
            else:
                children = [(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
            stack.extend(reversed(children))  # depth-first, in document order
    return None


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "Must not contain the NUL character."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Must be valid Unicode (no lone surrogates)."
    return None


_JSON = JSONRenderer()


def json_response(
    request: Request, data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    """``Response(data)`` as the API's only renderer renders it, without REST framework's
    template-response machinery around it (a few per cent of the single-enrich request).
    Content negotiation has run by the time a view answers and JSON is the only format, so
    the client gets the same bytes, an ``Accept: application/json; indent=4`` included."""
    body = _JSON.render(data, getattr(request, "accepted_media_type", None))
    return HttpResponse(body, status=status, content_type=_JSON.media_type, headers=headers)


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
        413: "Body larger than the server accepts (DATA_UPLOAD_MAX_MEMORY_SIZE)",
        422: "Well-formed but invalid; details maps field paths to messages",
        429: "Rate limited; see Retry-After",
    }
    return {c: OpenApiResponse(ErrorSerializer, description=text[c]) for c in codes}


LIST_PARAMETERS = [
    OpenApiParameter("limit", int, description="Page size, 1-100 (default 25)"),
    OpenApiParameter("cursor", str, description="next_cursor from the previous page"),
]
