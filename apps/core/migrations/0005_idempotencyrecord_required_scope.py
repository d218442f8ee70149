from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_idempotency_key_per_mode"),
    ]

    operations = [
        # Nullable, no default: rows stored before it stay NULL, which replays only to a key
        # with every scope (see IdempotencyRecord.required_scope).
        migrations.AddField(
            model_name="idempotencyrecord",
            name="required_scope",
            field=models.CharField(blank=True, max_length=32, null=True),
        ),
    ]
