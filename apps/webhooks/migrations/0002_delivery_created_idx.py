from django.db import migrations, models

from apps.core.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("webhooks", "0001_initial")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="delivery",
            index=models.Index(fields=["created_at"], name="delivery_created_idx"),
        ),
    ]
