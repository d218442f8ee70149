"""The database cache table used in the embedded default (no Redis) for rate limits."""

from django.db import migrations

SQL = """
CREATE TABLE IF NOT EXISTS sluice_cache (
    cache_key varchar(255) NOT NULL PRIMARY KEY,
    value text NOT NULL,
    expires timestamp NOT NULL
)
"""


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.RunSQL(SQL, "DROP TABLE IF EXISTS sluice_cache"),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS sluice_cache_expires ON sluice_cache (expires)",
            migrations.RunSQL.noop,
        ),
    ]
