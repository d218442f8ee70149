"""The database cache's ``expires`` column as timestamptz on PostgreSQL, as Django expects."""

# 0001 created it as ``timestamp``; with USE_TZ Django's database cache compares it with
# aware datetimes, which fails on PostgreSQL without Redis. SQLite has one type only.

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE sluice_cache ALTER COLUMN expires TYPE timestamp with time zone "
            "USING expires AT TIME ZONE 'UTC'"
        )


class Migration(migrations.Migration):
    dependencies = [("core", "0002_idempotencyrecord")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
