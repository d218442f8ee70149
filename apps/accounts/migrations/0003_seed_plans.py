"""Seed the plan table (SPEC §2); rows stay editable in admin afterwards."""

from django.db import migrations

PLANS = [
    # code, name, api_access, daily, per_minute, max_keys, bulk_max
    ("free", "Free", False, None, None, None, None),
    ("starter", "Starter", False, None, None, None, None),
    ("growth", "Growth", True, 500, 100, 2, 50),
    ("pro", "Pro", True, 1000, 200, 5, 100),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for code, name, api, daily, minute, keys, bulk in PLANS:
        Plan.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "api_access": api,
                "daily_requests": daily,
                "per_minute": minute,
                "max_active_keys": keys,
                "bulk_max": bulk,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
