"""Contacts submitted for enrichment, the bulk jobs that group them, and provider attempts."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class BulkJob(models.Model):
    """One ``POST /enrich/bulk``. Counters are bumped by F() updates as contacts finish."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="bulk_jobs"
    )
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    sandbox = models.BooleanField(default=False)
    enrichment_type = models.JSONField(default=list)
    webhook_url = models.URLField(max_length=2048, blank=True, default="")
    # The body format its webhook_url receives ("" Sluice's; a dialect's, apps.webhooks.formats).
    webhook_format = models.CharField(max_length=20, blank=True, default="")
    total = models.PositiveIntegerField()
    finished = models.PositiveIntegerField(default=0)
    verified = models.PositiveIntegerField(default=0)
    not_found = models.PositiveIntegerField(default=0)
    no_credits = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    credits_used = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return f"bulk {self.id} ({self.finished}/{self.total})"

    @property
    def status(self) -> str:
        return "completed" if self.completed_at else "pending"


class Contact(models.Model):
    """One contact to enrich; its id is the public ``enrichment_id``."""

    PENDING = "pending"
    FINISHED = "finished"
    STATUSES = [(PENDING, "pending"), (FINISHED, "finished")]

    VERIFIED = "VERIFIED"
    NOT_FOUND = "NOT_FOUND"
    NO_CREDITS = "NO_CREDITS"
    FAILED = "FAILED"
    RESULT_STATUSES = [(s, s) for s in (VERIFIED, NOT_FOUND, NO_CREDITS, FAILED)]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="contacts"
    )
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    bulk = models.ForeignKey(
        BulkJob, null=True, blank=True, on_delete=models.CASCADE, related_name="contacts"
    )
    position = models.PositiveIntegerField(default=0, help_text="Index in the bulk request")
    sandbox = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)

    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    company_name = models.CharField(max_length=200, blank=True, default="")
    domain = models.CharField(max_length=253, blank=True, default="")
    linkedin_url = models.CharField(max_length=500, blank=True, default="")
    enrichment_type = models.JSONField(default=list)
    phone_country_codes = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=2048, blank=True, default="")
    # The body format its webhook_url receives ("" Sluice's; a dialect's, apps.webhooks.formats).
    webhook_format = models.CharField(max_length=20, blank=True, default="")
    custom = models.JSONField(null=True, blank=True)
    max_credits = models.PositiveIntegerField(null=True, blank=True)
    # Normalised identity of the person (LinkedIn URL, else name + domain) for result reuse.
    person_key = models.CharField(max_length=600, blank=True, default="")

    result = models.JSONField(null=True, blank=True)
    result_status = models.CharField(max_length=10, choices=RESULT_STATUSES, null=True, blank=True)
    credits_charged = models.PositiveIntegerField(default=0)

    # A worker holds a lease while it runs the waterfall and renews it every few seconds
    # (apps/core/leases.py); a lease that lapsed means its worker is gone, and the reaper
    # publishes the contact again. ``lease_owner`` is the claim's token: a finish or renewal
    # by any other claim changes nothing (the fence); the reaper clears it.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.UUIDField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    # When the reaper last published it (NULL: only at intake, ``created_at``).
    published_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "-created_at"]),
            models.Index(fields=["account", "status", "-created_at"]),
            models.Index(fields=["account", "updated_at"]),
            models.Index(fields=["bulk", "position"]),
            # Cross-account time windows: the ops dashboard, admin date filters, /metrics.
            models.Index(fields=["created_at"], name="contact_created_idx"),
            models.Index(fields=["finished_at"], name="contact_finished_idx"),
            models.Index(
                fields=["created_at"], name="contact_pending_idx", condition=Q(status="pending")
            ),
            models.Index(
                fields=["account", "person_key", "-finished_at"],
                name="contact_reuse_idx",
                condition=Q(result_status="VERIFIED"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} ({self.status})"


class ProviderAttempt(models.Model):
    """One provider call (or cache reuse, or skip) made for one contact and one kind."""

    HIT = "hit"
    MISS = "miss"
    ERROR = "error"
    SKIPPED = "skipped"
    CACHE = "cache"
    OUTCOMES = [(o, o) for o in (HIT, MISS, ERROR, SKIPPED, CACHE)]

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="attempts")
    provider = models.CharField(max_length=50, db_index=True)
    kind = models.CharField(max_length=20)
    outcome = models.CharField(max_length=10, choices=OUTCOMES)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(null=True, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["contact", "position"]
        indexes = [models.Index(fields=["provider", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.provider}/{self.kind}: {self.outcome}"


class List(models.Model):
    """A named set of an account's contacts (``/api/v1/lists``), in one mode like them.

    ``contact_count`` is a counter kept in the transaction that adds or removes entries
    (``services.lists``), so the list page costs one query whatever the lists' sizes.
    """

    # prospiq's lists show named colours ("indigo", "amber"); these are the hues of that
    # palette (Tailwind's), and nothing else is accepted.
    COLORS = (
        "gray",
        "red",
        "orange",
        "amber",
        "yellow",
        "lime",
        "green",
        "emerald",
        "teal",
        "cyan",
        "sky",
        "blue",
        "indigo",
        "violet",
        "purple",
        "fuchsia",
        "pink",
        "rose",
    )
    DEFAULT_COLOR = "gray"
    NAME_MAX_LENGTH = 100
    DESCRIPTION_MAX_LENGTH = 500

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="lists")
    # The creating key's mode: a sandbox list holds sandbox contacts and only sandbox keys
    # see it, as for contacts and bulks.
    sandbox = models.BooleanField(default=False)
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    description = models.CharField(max_length=DESCRIPTION_MAX_LENGTH, null=True, blank=True)
    color = models.CharField(max_length=20, choices=[(c, c) for c in COLORS], default=DEFAULT_COLOR)
    is_pinned = models.BooleanField(default=False)
    contact_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Also moved by adding or removing contacts: "most recently updated" counts them.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The list page's order (pinned first, then most recently updated) per mode.
            models.Index(
                fields=["account", "sandbox", "-is_pinned", "-updated_at", "-id"],
                name="list_page_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ListEntry(models.Model):
    """One contact in one list; a contact is in a list at most once."""

    id = models.BigAutoField(primary_key=True)
    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="entries")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="list_entries")
    created_at = models.DateTimeField("added at", auto_now_add=True)

    class Meta:
        verbose_name_plural = "list entries"
        constraints = [
            models.UniqueConstraint(fields=["list", "contact"], name="list_entry_unique"),
        ]
        indexes = [models.Index(fields=["list", "-created_at", "-id"], name="list_entry_page_idx")]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.list_id}"
