"""prospiq's error body, ``{"error": "..."}``, with the status codes Sluice's handler gives
(the seed's: 400, 401, 402, 403, 404, 409, 422, 429; also 405, 413, 415 and 503 when they
happen). The message is Sluice's; a 422 names each field (by prospiq's names: validation.py
renames Sluice's)."""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.response import Response

from apps.core import errors as core_errors
from apps.core.errors import InvalidRequest

logger = logging.getLogger(__name__)


def message(body: dict[str, Any], status: int) -> str:
    """The one string of a prospiq error, from Sluice's envelope: its message, or for a
    plain 422 each field's problem (``first_name: Must be 2+ characters.; company: …``)."""
    details = body.get("details") or {}
    text = str(body.get("error") or "Error")
    if status != 422 or not details or text != InvalidRequest.message:
        return text
    return "; ".join(f"{path}: {problem}" for path, problem in details.items())


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """A DRF exception handler: Sluice's mapping of every error to its status and headers,
    rendered as prospiq's body. An unexpected exception is logged and answered 500."""
    response = core_errors.exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in the prospiq dialect", exc_info=exc)
        return Response({"error": "Internal server error"}, status=500)
    body = response.data if isinstance(response.data, dict) else {}
    response.data = {"error": message(body, response.status_code)}
    return response
