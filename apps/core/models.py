"""Shared models: the stored outcome of an idempotent POST (SPEC §4)."""

from __future__ import annotations

from django.db import models


class IdempotencyRecord(models.Model):
    """One ``Idempotency-Key`` of one account: a lock while in flight, then the answer.

    The unique (account, mode, key) constraint is the lock: of two concurrent requests with one
    key, exactly one INSERT succeeds and only that request runs the view.
    """

    IN_FLIGHT = "in_flight"
    COMPLETED = "completed"
    STATES = [(IN_FLIGHT, "in flight"), (COMPLETED, "completed")]

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="idempotency_records"
    )
    key = models.CharField(max_length=255)
    # Sandbox and live keys keep separate key spaces (as Stripe's test and live modes): a live
    # retry must never be answered with a sandbox request's result.
    sandbox = models.BooleanField(default=False)
    # SHA-256 of method, path and the (canonicalised) body: "same request" means same hash.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    # The scope the endpoint demanded of the key that made the request ("" = none): a replay
    # goes only to a key holding it, or another key of the account without the ``webhooks``
    # scope could read an endpoint's secret by replaying its key. NULL = a record stored
    # before this was kept; only a key with every scope may have it replayed.
    required_scope = models.CharField(max_length=32, null=True, blank=True)
    state = models.CharField(max_length=10, choices=STATES, default=IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the current holder took the lock; a lock older than the timeout may be taken over.
    locked_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "sandbox", "key"], name="idempotency_key_per_account_mode"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
