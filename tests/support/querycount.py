"""How many SQL queries one admin page costs (admin and dashboard tests)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

# A changelist costs a fixed number of queries (session, user, count, rows, filters, …);
# this cap catches a page that starts querying per row long before 50 rows would.
MAX_CHANGELIST_QUERIES = 15


def page_queries(client, url: str) -> int:
    """Queries run to render ``url`` (asserting it renders), after one warm-up request."""
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(ctx.captured_queries)
