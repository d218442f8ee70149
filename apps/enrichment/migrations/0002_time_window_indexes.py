from django.db import migrations, models

from apps.core.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("enrichment", "0001_initial")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="contact",
            index=models.Index(fields=["created_at"], name="contact_created_idx"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="contact",
            index=models.Index(fields=["finished_at"], name="contact_finished_idx"),
        ),
    ]
