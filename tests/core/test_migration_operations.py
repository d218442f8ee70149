"""Indexes on live tables are built without blocking writes on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

pytestmark = pytest.mark.django_db(transaction=True)  # CONCURRENTLY refuses a transaction


@pytest.mark.parametrize(
    ("app", "name", "before"),
    [
        ("enrichment", "0002_time_window_indexes", "0001_initial"),
        ("webhooks", "0002_delivery_created_idx", "0001_initial"),
    ],
)
def test_index_migrations_build_concurrently(app, name, before):
    loader = MigrationLoader(connection)
    migration = loader.get_migration(app, name)
    assert migration.atomic is False
    state = loader.project_state((app, before))
    sql: list[str] = []
    for operation in migration.operations:
        after = state.clone()
        operation.state_forwards(app, after)
        with connection.schema_editor(collect_sql=True, atomic=False) as editor:
            operation.database_forwards(app, editor, state, after)
        sql += editor.collected_sql
        state = after
    assert sql and all(line.startswith("CREATE INDEX CONCURRENTLY") for line in sql), sql
