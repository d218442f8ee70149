"""Signals enrichment sends to the apps above it (a public Django API that keeps the layers
one way: enrichment never imports its listeners)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once, inside the transaction of the finish that completed a bulk (its counters are
# final), with ``bulk`` (a fresh ``BulkJob``). A receiver that owns the bulk (an import,
# ``apps.imports``) returns the ``EventDraft``s that announce the completion *instead of*
# ``bulk.completed``; a receiver that returns None leaves ``bulk.completed`` as it is.
bulk_completed = Signal()
