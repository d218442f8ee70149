"""Every webhook endpoint route, for tests that one tenant (or mode) cannot reach another's."""

from __future__ import annotations

import json
from typing import Any

Call = tuple[str, str, dict[str, Any] | None]  # (method, path, JSON body)


def endpoint_calls(theirs, delivery, mine) -> list[Call]:
    """A call to every route under endpoint ``theirs`` and its ``delivery``, and to that
    delivery under ``mine`` (an endpoint of the caller's own)."""
    base = f"/api/v1/webhooks/{theirs.pk}"
    return [
        ("get", base, None),
        ("patch", base, {"description": "mine now"}),
        ("delete", base, None),
        ("post", f"{base}/test", None),
        ("post", f"{base}/enable", None),
        ("post", f"{base}/rotate-secret", None),
        ("post", f"{base}/recover", {"since": "2020-01-01T00:00:00Z"}),
        ("get", f"{base}/deliveries", None),
        ("get", f"{base}/deliveries/{delivery.pk}", None),
        ("post", f"{base}/deliveries/{delivery.pk}/retry", None),
        # Their delivery under my own endpoint is not mine either.
        ("get", f"/api/v1/webhooks/{mine.pk}/deliveries/{delivery.pk}", None),
        ("post", f"/api/v1/webhooks/{mine.pk}/deliveries/{delivery.pk}/retry", None),
    ]


def assert_each_not_found(client, calls: list[Call]) -> None:
    """Each call answers 404 ``not_found``."""
    for method, path, body in calls:
        kwargs: dict[str, Any] = {"content_type": "application/json"}
        if body is not None:
            kwargs["data"] = json.dumps(body)
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json()["code"] == "not_found"
