"""Endpoints get an optional ``rate_limit`` (deliveries per second) and ``filter`` (on event data).

Both are nullable with no default, so on PostgreSQL neither rewrites the table (the CHECK of
the positive integer only reads the endpoints table, a few rows per account), and every
existing endpoint keeps its behaviour: no limit of its own, every event of its types.
"""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0004_modes"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="filter",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="endpoint",
            name="rate_limit",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Deliveries per second, 1 to 10000; empty: no limit",
                null=True,
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(10000),
                ],
            ),
        ),
    ]
