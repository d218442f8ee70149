"""Events, webhook endpoints (subscriptions), deliveries and their attempts (SPEC §6)."""

from __future__ import annotations

import json
import secrets
import string
import uuid
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from apps.accounts import notices

_BASE62 = string.ascii_letters + string.digits

# Deliveries per second an endpoint may ask to be limited to (null: no limit of its own).
RATE_LIMIT_MIN = 1
RATE_LIMIT_MAX = 10000


def event_id_generate() -> str:
    return "evt_" + "".join(secrets.choice(_BASE62) for _ in range(24))


class Event(models.Model):
    """Something that happened to an account; stored with the exact bytes every delivery signs."""

    CONTACT_ENRICHED = "contact.enriched"
    CONTACT_VERIFIED = "contact.verified"
    BULK_COMPLETED = "bulk.completed"
    CREDITS_LOW = notices.CREDITS_LOW
    CREDITS_EXHAUSTED = notices.CREDITS_EXHAUSTED
    ENDPOINT_DISABLED = "endpoint.disabled"
    # A contact was put in a list (enrichment builds the payload: services/lists.py).
    CONTACT_ADDED_TO_LIST = "contact.added_to_list"
    # Every contact of a CSV import has finished (built by the imports app).
    IMPORT_COMPLETED = "import.completed"
    TYPES = [
        CONTACT_ENRICHED,
        CONTACT_VERIFIED,
        BULK_COMPLETED,
        CREDITS_LOW,
        CREDITS_EXHAUSTED,
        ENDPOINT_DISABLED,
        CONTACT_ADDED_TO_LIST,
        IMPORT_COMPLETED,
    ]

    id = models.CharField(primary_key=True, max_length=40, default=event_id_generate)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=40, choices=[(t, t) for t in TYPES])
    # The serialised payload, kept as text so that every retry sends (and signs) the same bytes.
    body = models.TextField()
    # Sample events from POST /webhooks/{id}/test: delivered, never listed in GET /events.
    test = models.BooleanField(default=False)
    # The mode of what happened (a sandbox contact, a live charge): only that mode's keys list
    # it and only that mode's endpoints receive it. Rows from before modes existed are live.
    sandbox = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "type", "-created_at"]),
            models.Index(fields=["account", "sandbox", "-created_at"], name="event_mode_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class Endpoint(models.Model):
    """A subscription: a URL, the event types it wants, its signing secret and its health."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    # Set from the creating key's mode: a sandbox endpoint receives only sandbox events and is
    # seen only by sandbox keys. Rows from before modes existed are live (see migration 0004).
    sandbox = models.BooleanField(default=False)
    url = models.URLField(max_length=2048)
    events = models.JSONField(default=list)
    # Sorted, comma-joined ``events``: lets a unique index refuse duplicate active endpoints.
    events_key = models.CharField(max_length=400, editable=False)
    description = models.CharField(max_length=500, blank=True, default="")
    # The most deliveries per second the sender makes to it; null: no limit of its own.
    rate_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(RATE_LIMIT_MIN), MaxValueValidator(RATE_LIMIT_MAX)],
        help_text=f"Deliveries per second, {RATE_LIMIT_MIN} to {RATE_LIMIT_MAX}; empty: no limit",
    )
    # Which events it gets by the values in their data (apps/webhooks/filters.py), checked
    # before a delivery row is written; null: every event of its types.
    filter = models.JSONField(null=True, blank=True)
    # The body its deliveries are sent in: "" Sluice's, else a vendor dialect's (formats.py).
    body_format = models.CharField(max_length=20, blank=True, default="")
    # Kept in clear because HMAC needs the key itself; shown once (create and rotate).
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["account", "-created_at"])]
        constraints = [
            # Per mode: the same receiver may subscribe in both, and a 409 must not tell a
            # sandbox key that a live endpoint exists.
            models.UniqueConstraint(
                fields=["account", "sandbox", "url", "events_key"],
                condition=Q(active=True),
                name="webhook_endpoint_unique_active_per_mode",
            )
        ]

    def __str__(self) -> str:
        return f"{self.url} ({'active' if self.active else 'disabled'})"


class Delivery(models.Model):
    """One event to one target: an endpoint, or a request's ``webhook_url``. The row is the truth.

    ``next_attempt_at`` says when it is due; ``published_at`` when a message for it was last put
    on the broker (the sweep re-publishes a due delivery whose message seems lost);
    ``claimed_until`` is the lease a worker takes so that two workers never send it at once.
    """

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    STATUSES = [(s, s) for s in (PENDING, SUCCEEDED, FAILED, SKIPPED)]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    # Set for per-request webhook_url deliveries (no endpoint; signed with the callback secret).
    target_url = models.URLField(max_length=2048, blank=True, default="")
    # Its endpoint's, or its request's (a dialect's client's webhook_url): see formats.py.
    body_format = models.CharField(max_length=20, blank=True, default="")
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    # Attempts made in the current round of the retry schedule (a manual retry starts a round).
    round_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # The token of the claim behind ``claimed_until``: only that claim records the attempt.
    claim_token = models.UUIDField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due_idx",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["endpoint", "-created_at"]),
            models.Index(fields=["endpoint", "status", "created_at"]),
            # Cross-account time window of the ops dashboard and the admin changelist.
            models.Index(fields=["created_at"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP request made for a delivery, with what came back."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery", "at", "id"]
        indexes = [models.Index(fields=["delivery", "at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"attempt {self.status_code or self.error}"
