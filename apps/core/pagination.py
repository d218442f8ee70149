"""Keyset (cursor) pagination over ``(created_at, id)``, newest first.

Stable under inserts, one query per page: ``{"data": [...], "pagination": {...}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import BooleanField, DateTimeField, Field, Model, Q, QuerySet

from .errors import InvalidRequest
from .timefmt import parse_timestamp

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
# Our cursors are about 100 characters (a timestamp and a UUID, base64). A longer one is
# forged: refused before any decoding, with the same 422 as any other bad cursor.
MAX_CURSOR_LENGTH = 200


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequest(details={"limit": "Must be an integer between 1 and 100."})
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(details={"limit": "Must be an integer between 1 and 100."})
    return limit


def encode_cursor(created_at: datetime, pk: Any) -> str:
    raw = f"{created_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, model: type[Model]) -> tuple[datetime, Any]:
    """The ``(created_at, pk)`` a cursor encodes, or a 422 for anything a client forged.

    The pk goes through the model's own field conversion, so a cursor for another list or a
    hand-made one is a clean 422 rather than a database error; its moment goes through the
    API's one timestamp parser (``parse_timestamp``), so a forged offset or year cannot
    reach PostgreSQL either.
    """
    invalid = InvalidRequest(details={"cursor": "Invalid cursor."})
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, raw_pk = base64.urlsafe_b64decode(padded.encode()).decode().split("|", 1)
        if "\x00" in raw_pk:
            raise ValueError("NUL byte")
        created_at = parse_timestamp(created, field="cursor")
        return created_at, model._meta.pk.to_python(raw_pk)
    except (ValueError, ValidationError, binascii.Error, UnicodeDecodeError, InvalidRequest):
        raise invalid


def paginate(
    queryset: QuerySet,
    *,
    cursor: str | None,
    limit: int,
    serialize: Callable[[Sequence[Model]], list[dict[str, Any]]],
) -> dict[str, Any]:
    """Return one page of ``queryset`` (newest first) in the SPEC list envelope."""
    queryset = queryset.order_by("-created_at", "-pk")
    if cursor:
        created_at, pk = decode_cursor(cursor, queryset.model)
        queryset = queryset.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk)
        )
    rows = list(queryset[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].pk) if has_more and rows else None
    return {
        "data": serialize(rows),
        "pagination": {"next_cursor": next_cursor, "has_more": has_more},
    }


def _key_value(value: Any) -> Any:
    """A cursor's value for ``field``, in JSON."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool | int):
        return value
    return str(value)


def _key_parsed(field: Field, value: Any) -> Any:
    """A cursor's JSON value back as ``field``'s; ValueError for anything forged."""
    if isinstance(field, BooleanField):
        if not isinstance(value, bool):
            raise ValueError("not a boolean")
        return value
    if isinstance(field, DateTimeField):
        return parse_timestamp(value, field="cursor")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("not a key")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("NUL byte")
    return field.to_python(value)


def paginate_ordered(
    queryset: QuerySet,
    *,
    order: Sequence[str],
    cursor: str | None,
    limit: int,
    serialize: Callable[[Sequence[Model]], list[dict[str, Any]]],
) -> dict[str, Any]:
    """``paginate`` over another order: ``order`` names non-null fields, each ``-`` for
    descending, the last of them unique (``"-pk"``), e.g. lists' ``("-is_pinned",
    "-updated_at", "-pk")``. The cursor carries the last row's values of those fields, so a
    page is one query and stays stable under inserts; a row whose key changes between two
    pages (a list updated meanwhile) may move to a page already read, as in any keyset."""
    model = queryset.model
    keys = [(name.lstrip("-"), name.startswith("-")) for name in order]
    fields = [model._meta.pk if name == "pk" else model._meta.get_field(name) for name, _ in keys]
    queryset = queryset.order_by(*order)
    if cursor:
        invalid = InvalidRequest(details={"cursor": "Invalid cursor."})
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise invalid
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            raw = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
            if not isinstance(raw, list) or len(raw) != len(keys):
                raise ValueError("wrong shape")
            values = [_key_parsed(f, v) for f, v in zip(fields, raw, strict=True)]
        except (ValueError, ValidationError, binascii.Error, UnicodeDecodeError, InvalidRequest):
            raise invalid
        after = Q()
        for i, (name, descending) in enumerate(keys):
            step = Q(**{f"{name}__{'lt' if descending else 'gt'}": values[i]})
            for j, (earlier, _) in enumerate(keys[:i]):
                step &= Q(**{earlier: values[j]})
            after |= step
        queryset = queryset.filter(after)
    rows = list(queryset[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        raw = [_key_value(getattr(last, name)) for name, _ in keys]
        next_cursor = (
            base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode())
            .decode()
            .rstrip("=")
        )
    return {
        "data": serialize(rows),
        "pagination": {"next_cursor": next_cursor, "has_more": has_more},
    }
