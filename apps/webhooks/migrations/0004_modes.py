"""Endpoints and events belong to one mode (sandbox or live), as contacts and bulks do.

Existing endpoints become live: nothing recorded which key created them, and the endpoint
whose silence would hurt is the production one; a sandbox integration re-creates its endpoint
with its sk_test_ key. Existing events of a contact or a bulk take that object's mode (events
are kept only ``WEBHOOK_EVENT_RETENTION_SECONDS``, 7 days by default, so this reads a bounded
table); credits and endpoint events stay live, since sandbox work never charges.
"""

import json
import uuid

from django.db import migrations, models
from django.db.models import Q

from apps.core.migration_operations import AddIndexConcurrentlyOnPostgres

_BATCH = 2000


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _sandbox_events_mark(apps, schema_editor):
    Event = apps.get_model("webhooks", "Event")
    models_by_kind = {
        "contact": apps.get_model("enrichment", "Contact"),
        "bulk": apps.get_model("enrichment", "BulkJob"),
    }

    def mark(rows):
        sandbox = set()
        for kind, model in models_by_kind.items():
            pks = {pk for _, pk, k in rows if k == kind}
            sandbox |= set(
                model.objects.filter(pk__in=pks, sandbox=True).values_list("pk", flat=True)
            )
        ids = [event_id for event_id, pk, _ in rows if pk in sandbox]
        if ids:
            Event.objects.filter(pk__in=ids).update(sandbox=True)

    rows = []
    events = Event.objects.filter(
        type__in=["contact.enriched", "contact.verified", "bulk.completed"]
    ).values_list("id", "type", "body")
    for event_id, type, body in events.iterator(chunk_size=_BATCH):
        try:
            data = json.loads(body).get("data") or {}
        except (ValueError, AttributeError):
            continue
        kind, key = (
            ("bulk", "bulk_id") if type == "bulk.completed" else ("contact", "enrichment_id")
        )
        pk = _uuid(data.get(key)) if isinstance(data, dict) else None
        if pk is not None:
            rows.append((event_id, pk, kind))
        if len(rows) >= _BATCH:
            mark(rows)
            rows = []
    if rows:
        mark(rows)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("webhooks", "0003_leases"), ("enrichment", "0003_leases")]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="sandbox",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="event",
            name="sandbox",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(_sandbox_events_mark, migrations.RunPython.noop, elidable=True),
        AddIndexConcurrentlyOnPostgres(
            model_name="event",
            index=models.Index(fields=["account", "sandbox", "-created_at"], name="event_mode_idx"),
        ),
        # Endpoints are a handful of rows per account: a plain (locking) build is instant.
        migrations.RemoveConstraint(model_name="endpoint", name="webhook_endpoint_unique_active"),
        migrations.AddConstraint(
            model_name="endpoint",
            constraint=models.UniqueConstraint(
                condition=Q(active=True),
                fields=("account", "sandbox", "url", "events_key"),
                name="webhook_endpoint_unique_active_per_mode",
            ),
        ),
    ]
