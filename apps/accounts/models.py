"""Accounts (tenants), plans, API keys and the credit ledger."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Plan(models.Model):
    """A row per plan; seeded by a data migration and editable in admin (SPEC §2)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    api_access = models.BooleanField(default=False)
    daily_requests = models.PositiveIntegerField(null=True, blank=True)
    per_minute = models.PositiveIntegerField(null=True, blank=True)
    max_active_keys = models.PositiveIntegerField(null=True, blank=True)
    bulk_max = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """A tenant. Every API object belongs to exactly one account."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    # The *available* balance: changed only through apps.accounts.services (the ledger);
    # never negative. Credits held for running live work are not in it but in ``held``
    # (``credits + held`` is what the account owns), so a hold is visible and cannot be spent
    # twice: see ``credits_hold``.
    credits = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0, editable=False)
    personal_email_consent = models.BooleanField(default=False)
    default_phone_country_codes = models.JSONField(default=list, blank=True)
    # Signs deliveries to per-request webhook_url targets (SPEC §6). Kept in clear because
    # HMAC needs the key itself; it is shown once and rotatable.
    callback_secret = models.CharField(max_length=64)
    previous_callback_secret = models.CharField(max_length=64, blank=True, default="")
    previous_callback_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Per-account provider order override: {"email": ["hunter", "apollo"], ...}.
    provider_order = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(credits__gte=0), name="account_credits_non_negative"
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="account_held_non_negative"),
        ]

    def __str__(self) -> str:
        return self.name

    # DRF treats ``request.user`` as the principal; an account authenticated by key is one.
    @property
    def is_authenticated(self) -> bool:
        return True


class ApiKey(models.Model):
    """An API key. Only its SHA-256 hash and a short display prefix are stored."""

    MODE_LIVE = "live"
    MODE_TEST = "test"
    MODES = [(MODE_LIVE, "live"), (MODE_TEST, "test (sandbox)")]

    SCOPE_ENRICH = "enrich"
    SCOPE_READ = "read"
    SCOPE_WEBHOOKS = "webhooks"
    ALL_SCOPES = [SCOPE_ENRICH, SCOPE_READ, SCOPE_WEBHOOKS]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    mode = models.CharField(max_length=4, choices=MODES)
    prefix = models.CharField(max_length=20, help_text="Display prefix, e.g. sk_test_AbCd")
    key_hash = models.CharField(max_length=64, unique=True)
    ip_allowlist = models.JSONField(default=list, blank=True, help_text="IPs or CIDRs; empty = any")
    scopes = models.JSONField(default=list, blank=True, help_text="Empty = all scopes")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["account", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def sandbox(self) -> bool:
        return self.mode == self.MODE_TEST

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return not self.scopes or scope in self.scopes


class LedgerEntry(models.Model):
    """One change of an account's balance. The balance always equals the sum of amounts."""

    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    # Credits set aside for a contact's running waterfall (negative) and given back (positive)
    # when it finishes or its lease lapses; written only by credits_hold / credits_release.
    HOLD = "hold"
    RELEASE = "release"
    TYPES = [(TOPUP, "top-up"), (CHARGE, "charge"), (REFUND, "refund"), (ADJUSTMENT, "adjustment")]
    ALL_TYPES = [*TYPES, (HOLD, "hold"), (RELEASE, "release")]

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="ledger")
    entry_type = models.CharField(max_length=12, choices=ALL_TYPES)
    amount = models.BigIntegerField(help_text="Signed: charges are negative")
    balance_after = models.BigIntegerField()
    contact = models.ForeignKey(
        "enrichment.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ledger_entries",
    )
    # The claim (lease token) a hold was taken for, so that what one run held is released once.
    hold_token = models.UUIDField(null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["account", "-created_at"])]
        constraints = [
            # A contact is charged at most once, whatever the task does (SPEC §2).
            models.UniqueConstraint(
                fields=["contact"],
                condition=Q(entry_type="charge"),
                name="ledger_one_charge_per_contact",
            ),
            # ... and refunded at most once, so a retried refund cannot mint credits.
            models.UniqueConstraint(
                fields=["contact"],
                condition=Q(entry_type="refund"),
                name="ledger_one_refund_per_contact",
            ),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="ledger_balance_after_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entry_type} {self.amount:+d}"
