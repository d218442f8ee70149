"""App config for ops: wires the support-group grant and the SQLite percentile function."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class OpsConfig(AppConfig):
    name = "apps.ops"
    label = "ops"
    verbose_name = "Ops"

    def ready(self) -> None:
        from .percentile import sqlite_register_percentile
        from .services import support_group_grant_on_migrate

        # Not filtered by sender: models of apps migrated after ops (or added later) must
        # reach the support group too, and each app's permissions exist only once its own
        # post_migrate (auth's create_permissions) has run.
        post_migrate.connect(support_group_grant_on_migrate, dispatch_uid="ops_support_group")
        connection_created.connect(sqlite_register_percentile, dispatch_uid="ops_percentile")
