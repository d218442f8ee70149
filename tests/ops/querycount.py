"""Moved to tests/support/querycount.py; re-exported here until the admin tests import it there."""

from tests.support.querycount import MAX_CHANGELIST_QUERIES, page_queries

__all__ = ["MAX_CHANGELIST_QUERIES", "page_queries"]
