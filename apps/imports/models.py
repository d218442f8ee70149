"""CSV imports (one enrichment bulk each), their per-row errors, and CSV exports."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class Import(models.Model):
    """One uploaded CSV. ``status`` is the client's view; ``stage`` says where the work is:
    ``validating`` (first pass: count and check rows, record errors), ``enqueueing`` (second
    pass: contacts created chunk by chunk, ``next_row`` committed with each), ``enriching``
    (every contact created; the bulk runs), then ``done``."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    STATUSES = [(s, s) for s in (PROCESSING, COMPLETED, FAILED)]

    VALIDATING = "validating"
    ENQUEUEING = "enqueueing"
    ENRICHING = "enriching"
    DONE = "done"
    STAGES = [(s, s) for s in (VALIDATING, ENQUEUEING, ENRICHING, DONE)]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="imports"
    )
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    sandbox = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=STATUSES, default=PROCESSING)
    stage = models.CharField(max_length=12, choices=STAGES, default=VALIDATING)
    name = models.CharField(max_length=200, blank=True, default="")
    file_name = models.CharField(max_length=255)
    # The upload's name in the default storage (deleted once every row is enqueued).
    file_key = models.CharField(max_length=500, blank=True, default="")
    file_size = models.PositiveBigIntegerField(default=0)
    encoding = models.CharField(max_length=12)
    delimiter = models.CharField(max_length=1)
    # The header's column names in their order, and column -> contact field.
    columns = models.JSONField(default=list)
    mapping = models.JSONField(default=dict)
    enrichment_type = models.JSONField(default=list)
    phone_country_codes = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=2048, blank=True, default="")
    list_id = models.UUIDField(null=True, blank=True)
    bulk = models.OneToOneField(
        "enrichment.BulkJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="source_import",
    )
    total_rows = models.PositiveIntegerField(default=0)  # data rows (blank lines not counted)
    valid_rows = models.PositiveIntegerField(default=0)
    imported_rows = models.PositiveIntegerField(default=0)  # contacts created so far
    error_count = models.PositiveIntegerField(default=0)
    # Second pass: records of the file (header = 1) already turned into contacts.
    next_row = models.PositiveIntegerField(default=0)
    error_message = models.CharField(max_length=500, blank=True, default="")
    # The lease of the worker processing it (apps/core/leases.py); the sweep re-publishes an
    # import whose lease lapsed, or whose message seems lost.
    lease_owner = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "sandbox", "-created_at"], name="import_mode_idx"),
            models.Index(
                fields=["created_at"], name="import_active_idx", condition=~Q(stage="done")
            ),
        ]

    def __str__(self) -> str:
        return f"import {self.file_name} ({self.status})"


class ImportRowError(models.Model):
    """One problem of one row: the row was skipped."""

    id = models.BigAutoField(primary_key=True)
    import_job = models.ForeignKey(Import, on_delete=models.CASCADE, related_name="row_errors")
    row = models.PositiveIntegerField(help_text="Record number in the file; the header is 1")
    field = models.CharField(max_length=100, blank=True, default="")
    column = models.CharField(max_length=200, blank=True, default="")
    message = models.CharField(max_length=500)

    class Meta:
        indexes = [models.Index(fields=["import_job", "row", "id"])]

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


class Export(models.Model):
    """One CSV of contacts (an import's, a bulk's, a list's, or a /contacts filter's)."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    STATUSES = [(s, s) for s in (PROCESSING, COMPLETED, FAILED, EXPIRED)]

    SOURCES = [(s, s) for s in ("import", "bulk", "list", "filters")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="exports"
    )
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    sandbox = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=STATUSES, default=PROCESSING)
    source = models.CharField(max_length=10, choices=SOURCES)
    # The import's, bulk's or list's id, or the /contacts filters.
    source_id = models.UUIDField(null=True, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    file_key = models.CharField(max_length=500, blank=True, default="")
    row_count = models.PositiveIntegerField(default=0)
    error_message = models.CharField(max_length=500, blank=True, default="")
    lease_owner = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "sandbox", "-created_at"], name="export_mode_idx"),
            models.Index(fields=["expires_at"], name="export_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"export {self.id} ({self.status})"

    @property
    def download_ready(self) -> bool:
        return self.status == self.COMPLETED
