"""Admin for enrichments (contacts with their attempts, leases, re-run and release), bulk jobs
and provider attempts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.enrichment.models import BulkJob, Contact, ProviderAttempt
from apps.enrichment.services import contacts_release
from apps.enrichment.validation import CONTACT_REQUEST
from apps.ops.services import contacts_rerun

from .base import (
    ActionsOnlyMixin,
    FixedValuesFilter,
    ReadOnlyAdmin,
    ReadOnlyInline,
    SluiceModelAdmin,
    UUIDSearchMixin,
    admin_link,
    pretty_json,
    short_id,
)


def _provider_names() -> list[str]:
    # From configuration, not from the attempts table: a DISTINCT over every attempt on each
    # changelist would cost more than the page itself.
    return sorted(settings.PROVIDERS)


class ProviderFilter(admin.SimpleListFilter):
    """Contacts for which a provider was tried (any outcome) or answered with a hit."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(name, name) for name in _provider_names()] + [
            (f"{name}:hit", f"{name} (hit)") for name in _provider_names()
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        name, _, outcome = self.value().partition(":")
        attempts = ProviderAttempt.objects.filter(contact=OuterRef("pk"), provider=name)
        if outcome:
            attempts = attempts.filter(outcome=outcome)
        # EXISTS, not a join: a contact with three attempts must be listed once.
        return queryset.filter(Exists(attempts))


class TimedQueryFilter(admin.SimpleListFilter):
    """A filter with a few fixed choices, each a query that depends on the time of the page
    load (and on settings): ``named_queries()`` maps the value in the URL to (label, ``Q``).
    An unknown value filters nothing."""

    def named_queries(self) -> dict[str, tuple[str, Q]]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(value, label) for value, (label, _) in self.named_queries().items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        choice = self.named_queries().get(self.value() or "")
        return queryset.filter(choice[1]) if choice else queryset


class LeaseFilter(TimedQueryFilter):
    """Pending contacts by their lease (apps/core/leases.py) as of this page load: a worker
    renews the lease of each contact it runs every few seconds, so a lapsed lease means the
    worker is gone (killed, or its run crashed) and the reaper is about to run it again."""

    title = "lease"
    parameter_name = "lease"

    def named_queries(self) -> dict[str, tuple[str, Q]]:
        now = timezone.now()
        pending = Q(status=Contact.PENDING)
        return {
            "live": ("held by a live worker", pending & Q(lease_expires_at__gte=now)),
            "lapsed": ("lapsed (worker gone)", pending & Q(lease_expires_at__lt=now)),
            "none": ("not claimed", pending & Q(lease_expires_at__isnull=True)),
        }


class RecoveryFilter(TimedQueryFilter):
    """Contacts that wait too long, or needed more than one run: the dashboard's figures."""

    title = "recovery"
    parameter_name = "recovery"

    def named_queries(self) -> dict[str, tuple[str, Q]]:
        now = timezone.now()
        stuck_after = settings.ENRICHMENT_STUCK_AFTER_SECONDS
        rerun = Q(run_count__gt=1)
        return {
            "stuck": (
                f"stuck: pending over {stuck_after} s",
                Q(status=Contact.PENDING, created_at__lt=now - timedelta(seconds=stuck_after)),
            ),
            "rerun_24h": (
                "re-run (more than one run), created in the last 24 h",
                rerun & Q(created_at__gte=now - timedelta(hours=24)),
            ),
            "rerun": ("re-run (more than one run), any time", rerun),
        }


class AttemptProviderFilter(FixedValuesFilter):
    title = "provider"
    parameter_name = "provider"

    def known_values(self) -> list[str]:
        return _provider_names()


class AttemptKindFilter(FixedValuesFilter):
    """Kinds from configuration: Django's default filter for a field without choices runs a
    DISTINCT over every attempt on each page load."""

    title = "kind"
    parameter_name = "kind"

    def known_values(self) -> list[str]:
        return list(settings.PROVIDER_ORDER)


class ProviderAttemptInline(ReadOnlyInline):
    model = ProviderAttempt
    fields = ("position", "provider", "kind", "outcome", "duration_ms", "error", "created_at")
    readonly_fields = fields
    ordering = ("created_at", "position")


@admin.register(Contact)
class ContactAdmin(ActionsOnlyMixin, UUIDSearchMixin, SluiceModelAdmin):
    uuid_search_fields = ("pk", "account_id", "bulk_id")
    # Big tables: skip the second COUNT(*) over the whole table when filtering.
    show_full_result_count = False
    list_display = (
        "enrichment_id",
        "full_name",
        "company_or_domain",
        "email",
        "account",
        "status",
        "result_status",
        "sandbox",
        "created_at",
    )
    list_display_links = ("enrichment_id", "full_name")
    list_select_related = ("account",)
    list_filter = (
        "status",
        LeaseFilter,
        RecoveryFilter,
        "result_status",
        ProviderFilter,
        "sandbox",
        "account",
        "created_at",
    )
    search_fields = (
        "first_name",
        "last_name",
        "company_name",
        "domain",
        "linkedin_url",
        "webhook_url",
        "result__email",
        "result__personal_email",
        "account__name",
        "custom",
    )
    search_help_text = (
        "Enrichment, account or bulk id; name, company, domain, LinkedIn URL, webhook URL, "
        "found email, account name or a value in custom."
    )
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 50
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "account_link",
                    "api_key",
                    "bulk_link",
                    "sandbox",
                    "status",
                    "created_at",
                    "finished_at",
                )
            },
        ),
        ("Result", {"fields": ("result_status", "credits_charged", "result_json")}),
        ("Custom (client correlation data)", {"fields": ("custom_json",)}),
        # What the client sent (validation.CONTACT_REQUEST); ``custom`` has its own fieldset.
        ("Request", {"fields": tuple(f.name for f in CONTACT_REQUEST if f.name != "custom")}),
        (
            "Internals",
            {
                "classes": ("collapse",),
                "fields": (
                    "person_key",
                    "run_count",
                    "lease_expires_at",
                    "lease_owner",
                    "published_at",
                    "updated_at",
                ),
            },
        ),
    )
    inlines = (ProviderAttemptInline,)
    actions = ("rerun_failed", "release_pending")

    def get_readonly_fields(self, request: HttpRequest, obj: Contact | None = None) -> list[str]:
        # Every field: a contact is the record of what a client asked and what we answered.
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        # The client's record of what it asked and what it was charged: the API would answer
        # 404 for an id it was given, the ledger row would lose its contact, and a bulk
        # missing a pending contact would never complete.
        return False

    @admin.display(description="enrichment id", ordering="id")
    def enrichment_id(self, obj: Contact) -> str:
        return short_id(obj.id)

    @admin.display(description="name", ordering="last_name")
    def full_name(self, obj: Contact) -> str:
        return f"{obj.first_name} {obj.last_name}"

    @admin.display(description="company / domain")
    def company_or_domain(self, obj: Contact) -> str:
        return obj.domain or obj.company_name or "-"

    @admin.display(description="email found")
    def email(self, obj: Contact) -> str:
        return (obj.result or {}).get("email") or "-"

    @admin.display(description="account")
    def account_link(self, obj: Contact) -> str:
        return admin_link(obj.account)

    @admin.display(description="bulk job")
    def bulk_link(self, obj: Contact) -> str:
        return admin_link(obj.bulk) if obj.bulk_id else "-"

    @admin.display(description="result")
    def result_json(self, obj: Contact) -> str:
        return pretty_json(obj.result)

    @admin.display(description="custom")
    def custom_json(self, obj: Contact) -> str:
        return pretty_json(obj.custom)

    @admin.action(description="Re-run selected FAILED enrichments", permissions=["change"])
    def rerun_failed(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        ids = contacts_rerun(contact_ids=selected)
        for contact in Contact.objects.filter(pk__in=ids):
            self.log_change(request, contact, "Re-run (was FAILED)")
        skipped = len(selected) - len(ids)
        self.message_user(
            request,
            f"Re-running {len(ids)} enrichment(s)."
            + (f" Skipped {skipped} that are not FAILED." if skipped else ""),
            level=messages.SUCCESS if ids else messages.WARNING,
        )

    @admin.action(
        description="Release and re-run selected pending contacts", permissions=["change"]
    )
    def release_pending(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        published, held = contacts_release(contact_ids=selected)
        for contact in Contact.objects.filter(pk__in=published):
            self.log_change(request, contact, "Released and published again (was pending)")
        finished = len(selected) - len(published) - held
        parts = [f"Published {len(published)} pending enrichment(s) again."]
        if held:
            parts.append(
                f"Skipped {held} held by a live worker (it is running them now; if it dies, "
                "the reaper runs them again as soon as their lease lapses)."
            )
        if finished:
            parts.append(
                f"Ignored {finished} that are finished (to run FAILED ones again, use "
                "\u201cRe-run selected FAILED enrichments\u201d)."
            )
        self.message_user(
            request, " ".join(parts), level=messages.SUCCESS if published else messages.WARNING
        )


@admin.register(BulkJob)
class BulkJobAdmin(ActionsOnlyMixin, UUIDSearchMixin, SluiceModelAdmin):
    uuid_search_fields = ("pk", "account_id")
    list_display = (
        "bulk_id",
        "account",
        "sandbox",
        # The progress bar shows the total; the completion time is on the page and a filter.
        "progress",
        "verified",
        "not_found",
        "no_credits",
        "failed",
        "credits_used",
        "state",
        "created_at",
    )
    list_display_links = ("bulk_id",)
    list_select_related = ("account",)
    list_filter = ("sandbox", ("completed_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("account__name", "webhook_url")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        "id",
        "account_link",
        "api_key",
        "sandbox",
        "state",
        "progress",
        "contacts",
        "total",
        "finished",
        "verified",
        "not_found",
        "no_credits",
        "failed",
        "credits_used",
        "enrichment_type",
        "webhook_url",
        "created_at",
        "completed_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: BulkJob | None = None) -> bool:
        # Deleting a bulk deletes its contacts (CASCADE): see ContactAdmin.
        return False

    @admin.display(description="bulk id", ordering="id")
    def bulk_id(self, obj: BulkJob) -> str:
        return short_id(obj.id)

    @admin.display(description="status", ordering="completed_at")
    def state(self, obj: BulkJob) -> str:
        return obj.status

    @admin.display(description="progress")
    def progress(self, obj: BulkJob) -> str:
        percent = round(100 * obj.finished / obj.total) if obj.total else 100
        return format_html(
            '<div title="{} of {} finished" style="width:120px;background:#e3e6ea;'
            'border-radius:3px"><div style="width:{}%;background:#2e9e5b;height:10px;'
            'border-radius:3px"></div></div><small>{}/{} ({}%)</small>',
            obj.finished,
            obj.total,
            percent,
            obj.finished,
            obj.total,
            percent,
        )

    @admin.display(description="account")
    def account_link(self, obj: BulkJob) -> str:
        return admin_link(obj.account)

    @admin.display(description="contacts")
    def contacts(self, obj: BulkJob) -> str:
        url = reverse("admin:enrichment_contact_changelist") + f"?bulk__id__exact={obj.pk}"
        return format_html('<a href="{}">The {} contacts of this bulk</a>', url, obj.total)


@admin.register(ProviderAttempt)
class ProviderAttemptAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    uuid_search_fields = ("contact_id",)
    # Big tables: skip the second COUNT(*) over the whole table when filtering.
    show_full_result_count = False
    list_display = (
        "created_at",
        "contact_name",
        "provider",
        "kind",
        "outcome",
        "duration_ms",
        "error_excerpt",
    )
    list_select_related = ("contact",)
    list_filter = (AttemptProviderFilter, AttemptKindFilter, "outcome", "created_at")
    search_fields = ("provider", "error")
    search_help_text = "Enrichment id, provider or error text."
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    fields = (
        "contact_link",
        "provider",
        "kind",
        "outcome",
        "position",
        "duration_ms",
        "error",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="contact", ordering="contact__last_name")
    def contact_name(self, obj: ProviderAttempt) -> str:
        return f"{obj.contact.first_name} {obj.contact.last_name}"

    @admin.display(description="contact")
    def contact_link(self, obj: ProviderAttempt) -> str:
        return admin_link(obj.contact)

    @admin.display(description="error")
    def error_excerpt(self, obj: ProviderAttempt) -> str:
        return (obj.error or "")[:120] or "-"
