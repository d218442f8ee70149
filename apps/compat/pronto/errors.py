"""Pronto's error body: Sluice's exception handler decides status and headers, this only
reshapes the envelope.

Pronto's pages give status codes (422 for an invalid body or a missing consent) but no error
body, so the dialect answers ``{"message": "...", "errors": {<field path>: <message>}}``: the
envelope's ``error`` and ``details``, with Pronto's field names (validation.py). Headers
(``Retry-After``, ``WWW-Authenticate``, the rate-limit ones) are kept.
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from apps.core import errors as core_errors


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = core_errors.exception_handler(exc, context)
    if response is None:
        return None  # a 500: Django's handler500 answers, as for any view
    envelope = response.data
    response.data = {"message": envelope["error"], "errors": envelope.get("details") or {}}
    return response


class ProntoErrors:
    """A DRF view mixin: this view's errors in Pronto's shape."""

    def get_exception_handler(self) -> Any:
        return exception_handler
