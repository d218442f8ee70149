"""The endpoint filter language: which events, by the values in their ``data``, an endpoint gets.

A filter is a JSON object ``{"result.status": ["VERIFIED"], "custom.crm": ["hubspot"]}``:

* each key is a dotted path into the event's ``data`` (``result.status``, ``custom.crm``), at
  most ``MAX_SEGMENTS`` segments; a list met on the way is looked into element by element
  (``result.phones.country`` reads every phone's country);
* each value is the list of accepted values (any of them), JSON scalars only: strings,
  numbers, ``true``/``false``, ``null``; a lone scalar is taken as a list of one;
* an event matches when every key does (AND); a key matches when some value found at its path
  is one of its accepted values. A path the data lacks matches nothing, so neither does the
  event. ``true`` never equals ``1``, and strings compare exactly (case included).

``filter_clean`` validates and normalises what a client sends (422 naming the problem);
``filter_matches`` is evaluated for every candidate endpoint before a delivery row is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from apps.core.errors import InvalidRequest

MAX_KEYS = 10
# custom is at most 3 levels deep at intake, so custom.a.b.c is the deepest path with data.
MAX_SEGMENTS = 4
MAX_PATH_CHARS = 200
MAX_VALUES = 20
MAX_STRING_CHARS = 200
# The endpoint rows (filters included) are read on every emit for the account: keep them small.
MAX_BYTES = 4096

Rules = dict[str, list[Any]]


def _problem(message: str) -> InvalidRequest:
    return InvalidRequest(details={"filter": message})


def _shown(key: str) -> str:
    return json.dumps(key if len(key) <= 40 else key[:40] + "…", ensure_ascii=False)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def filter_clean(value: Any) -> Rules | None:
    """The filter as stored: every value a list. ``None`` and ``{}`` mean no filter."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _problem(
            'Must be an object mapping data paths to accepted values, e.g. {"result.status": '
            '["VERIFIED"]}, or null for no filter.'
        )
    if not value:
        return None
    if len(value) > MAX_KEYS:
        raise _problem(f"At most {MAX_KEYS} paths (got {len(value)}).")
    rules: Rules = {}
    for key, accepted in value.items():
        segments = key.split(".")
        if len(key) > MAX_PATH_CHARS:
            raise _problem(f"Path {_shown(key)} is longer than {MAX_PATH_CHARS} characters.")
        if any(not s.strip() for s in segments):
            raise _problem(
                f"Path {_shown(key)} must be dot-separated field names, none empty "
                '(e.g. "result.status").'
            )
        if len(segments) > MAX_SEGMENTS:
            raise _problem(f"Path {_shown(key)} is deeper than {MAX_SEGMENTS} fields.")
        if _is_scalar(accepted):
            accepted = [accepted]
        if not isinstance(accepted, list):
            raise _problem(f"Path {_shown(key)}: the accepted values must be a list of scalars.")
        if not accepted:
            raise _problem(f"Path {_shown(key)}: list at least one accepted value.")
        if len(accepted) > MAX_VALUES:
            raise _problem(f"Path {_shown(key)}: at most {MAX_VALUES} accepted values.")
        for item in accepted:
            if not _is_scalar(item):
                raise _problem(
                    f"Path {_shown(key)}: accepted values must be strings, numbers, "
                    "booleans or null, not objects or lists."
                )
            if isinstance(item, str) and len(item) > MAX_STRING_CHARS:
                raise _problem(
                    f"Path {_shown(key)}: a value is longer than {MAX_STRING_CHARS} characters."
                )
        rules[key] = list(accepted)
    if len(json.dumps(rules, separators=(",", ":")).encode()) > MAX_BYTES:
        raise _problem(f"Must be at most {MAX_BYTES} bytes serialised.")
    return rules


def _tagged(value: Any) -> tuple[str, Any]:
    # Python has True == 1 and hash(True) == hash(1); JSON does not: a boolean is not a number.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if value is None:
        return ("null", None)
    return ("string", value)


def _found(node: Any, segments: list[str]) -> Iterator[Any]:
    """The scalars at this path below ``node``; lists on the way are looked into."""
    if isinstance(node, list):
        for item in node:
            yield from _found(item, segments)
        return
    if not segments:
        if _is_scalar(node):
            yield node
        return
    if isinstance(node, dict) and segments[0] in node:
        yield from _found(node[segments[0]], segments[1:])


def filter_matches(rules: Rules | None, data: Any) -> bool:
    """Whether an event with this ``data`` passes the filter (no filter: every event)."""
    if not rules:
        return True
    for path, accepted in rules.items():
        wanted = {_tagged(v) for v in accepted}
        if not any(_tagged(v) in wanted for v in _found(data, path.split("."))):
            return False
    return True
