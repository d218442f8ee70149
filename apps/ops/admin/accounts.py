"""Admin for plans, accounts (balance, top-ups), API keys (shown once, revoke) and the ledger."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from apps.accounts.models import Account, ApiKey, LedgerEntry, Plan
from apps.accounts.services import account_create, api_key_create, api_key_revoke
from apps.core.errors import SluiceError
from apps.enrichment.models import Contact
from apps.ops.forms import (
    AccountCreateForm,
    ApiKeyCreateForm,
    CommaListField,
    TopUpForm,
    clean_countries,
    clean_ip_allowlist,
    clean_provider_order,
)
from apps.ops.services import credits_adjust

from .base import (
    NamedQueryFilter,
    ReadOnlyAdmin,
    ReadOnlyInline,
    SaveChangedFieldsMixin,
    SecretShownOnceAddMixin,
    SluiceModelAdmin,
    UUIDSearchMixin,
    admin_link,
    error_text,
    form_page,
)


@admin.register(Plan)
class PlanAdmin(SluiceModelAdmin):
    list_display = (
        "code",
        "name",
        "api_access",
        "daily_requests",
        "per_minute",
        "max_active_keys",
        "bulk_max",
        "account_count",
    )
    list_filter = ("api_access",)
    search_fields = ("code", "name")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        return super().get_queryset(request).annotate(_accounts=Count("accounts"))

    def get_readonly_fields(self, request: HttpRequest, obj: Plan | None = None) -> list[str]:
        # The code is what the API reports and what account_create and the management
        # commands look plans up by: fixed once the plan exists.
        return ["code"] if obj is not None else []

    @admin.display(description="accounts", ordering="_accounts")
    def account_count(self, obj: Plan) -> int:
        return obj._accounts


class AccountChangeForm(forms.ModelForm):
    default_phone_country_codes = CommaListField(
        required=False, help_text="ISO alpha-2 codes, comma-separated, e.g. US, GB."
    )

    class Meta:
        model = Account
        fields = (
            "name",
            "plan",
            "personal_email_consent",
            "default_phone_country_codes",
            "provider_order",
        )
        help_texts = {
            "provider_order": 'Per-account waterfall order, e.g. {"email": ["sandbox"]}; '
            "empty = the default order."
        }

    def clean_default_phone_country_codes(self) -> list[str]:
        return clean_countries(self.cleaned_data["default_phone_country_codes"])

    def clean_provider_order(self) -> dict[str, list[str]]:
        return clean_provider_order(self.cleaned_data["provider_order"])


class ProviderOrderFilter(NamedQueryFilter):
    """Accounts with their own waterfall order: who is not affected by a provider change."""

    title = "provider order"
    parameter_name = "provider_order"
    queries = {
        "custom": ("own order", ~Q(provider_order={})),
        "default": ("default order", Q(provider_order={})),
    }


class ApiKeyInline(ReadOnlyInline):
    model = ApiKey
    fields = ("prefix", "name", "mode", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    show_change_link = True
    ordering = ("-created_at",)


@admin.register(Account)
class AccountAdmin(
    SecretShownOnceAddMixin, SaveChangedFieldsMixin, UUIDSearchMixin, SluiceModelAdmin
):
    form = AccountChangeForm
    list_display = (
        "name",
        "plan",
        "credits",
        "personal_email_consent",
        "countries",
        "active_keys",
        "created_at",
    )
    list_select_related = ("plan",)
    list_filter = ("plan", "personal_email_consent", ProviderOrderFilter, "created_at")
    search_fields = ("name",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    readonly_fields = (
        "id",
        "credits",
        "top_up_link",
        "ledger",
        "new_key",
        "records",
        "created_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "name",
                    "plan",
                    "credits",
                    "top_up_link",
                    "ledger",
                    "new_key",
                    "records",
                    "created_at",
                )
            },
        ),
        (
            "Enrichment",
            {"fields": ("personal_email_consent", "default_phone_country_codes", "provider_order")},
        ),
    )
    inlines = (ApiKeyInline,)
    actions = ("top_up",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return (
            super()
            .get_queryset(request)
            .annotate(_active_keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        )

    def get_fieldsets(self, request: HttpRequest, obj: Account | None = None) -> Any:
        # Links to pages a read-only (support) user would only get a 403 from are left out.
        hidden = set()
        if not self.has_change_permission(request, obj):
            hidden.add("top_up_link")
        if not self.admin_site._registry[ApiKey].has_add_permission(request):
            hidden.add("new_key")
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f not in hidden]})
            for name, opts in super().get_fieldsets(request, obj)
        ]

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # A tenant's deletion cascades to its ledger (read-only for everyone), contacts and
        # events, and the confirmation page would load every one of those rows. Revoke its
        # keys instead.
        return False

    @admin.display(description="active keys", ordering="_active_keys")
    def active_keys(self, obj: Account) -> int:
        return obj._active_keys

    @admin.display(description="phone countries")
    def countries(self, obj: Account) -> str:
        return ", ".join(obj.default_phone_country_codes) or "-"

    @admin.display(description="ledger")
    def ledger(self, obj: Account) -> str:
        url = reverse("admin:accounts_ledgerentry_changelist") + f"?account__id__exact={obj.pk}"
        return format_html('<a href="{}">All ledger entries</a>', url)

    @admin.display(description="records")
    def records(self, obj: Account) -> str:
        """Links to this account's rows in every other list (no count: one query each)."""
        lists = [
            ("enrichment", "contact", "Enrichments"),
            ("enrichment", "bulkjob", "Bulk jobs"),
            ("enrichment", "list", "Lists"),
            ("imports", "import", "Imports"),
            ("imports", "export", "Exports"),
            ("accounts", "apikey", "API keys"),
            ("webhooks", "endpoint", "Webhook endpoints"),
            ("webhooks", "delivery", "Deliveries"),
            ("webhooks", "event", "Events"),
            ("core", "idempotencyrecord", "Idempotency records"),
        ]
        return format_html_join(
            " · ",
            '<a href="{}?account__id__exact={}">{}</a>',
            (
                (reverse(f"admin:{app}_{model}_changelist"), obj.pk, label)
                for app, model, label in lists
            ),
        )

    @admin.display(description="top-up")
    def top_up_link(self, obj: Account) -> str:
        url = reverse("admin:accounts_account_top_up", args=[obj.pk])
        return format_html('<a href="{}">Top up or adjust credits…</a>', url)

    def get_urls(self) -> list[URLPattern]:
        top_up = path(
            "<path:object_id>/top-up/",
            self.admin_site.admin_view(self.top_up_view),
            name="accounts_account_top_up",
        )
        return [top_up, *super().get_urls()]

    def top_up_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The top-up action for one account, reached from its page."""
        account = self.get_object(request, object_id)
        if account is None:
            raise Http404
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        response = self.top_up(request, Account.objects.filter(pk=account.pk))
        return response or redirect("admin:accounts_account_change", account.pk)

    @admin.display(description="API keys")
    def new_key(self, obj: Account) -> str:
        url = reverse("admin:accounts_apikey_add") + f"?account={obj.pk}"
        return format_html('<a href="{}">Create a key for this account</a>', url)

    # --- Creating an account goes through account_create, which also mints its first key ----

    add_form = AccountCreateForm
    add_title = "Add account"

    def create_with_secrets(self, data: dict[str, Any]) -> tuple[Account, str, list]:
        created = account_create(
            name=data["name"],
            plan_code=data["plan"].code,
            credits=data["credits"],
            mode=data["mode"],
            personal_email_consent=data["personal_email_consent"],
            default_phone_country_codes=data["default_phone_country_codes"],
        )
        account = created.account
        return (
            account,
            f"Account “{account.name}” created",
            [
                ("API key", created.key.raw_key),
                ("Callback (webhook) secret", account.callback_secret),
            ],
        )

    # --- Top-up: an intermediate form, then one ledger row per account ----------------------

    @admin.action(description="Top up or adjust credits…", permissions=["change"])
    def top_up(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        form = TopUpForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            data = form.cleaned_data
            done = 0
            for account in queryset:
                try:
                    entry = credits_adjust(
                        account=account,
                        amount=data["amount"],
                        entry_type=data["entry_type"],
                        reason=data["reason"],
                        created_by=request.user,
                    )
                except SluiceError as exc:
                    self.message_user(
                        request, f"{account.name}: {error_text(exc)}", level=messages.ERROR
                    )
                    continue
                done += 1
                self.log_change(
                    request,
                    account,
                    f"{entry.get_entry_type_display()} {entry.amount:+d} credits "
                    f"({data['reason']}); balance {entry.balance_after}",
                )
            if done:
                self.message_user(
                    request,
                    f"{data['amount']:+d} credits written to the ledger of {done} account(s).",
                    level=messages.SUCCESS,
                )
            return None
        return form_page(
            request,
            self,
            title="Top up or adjust credits",
            intro="One ledger row per account, recorded with your user and the reason.",
            objects=[f"{a.name}: {a.credits} credits" for a in queryset],
            form=form,
            hidden=[("action", "top_up"), ("apply", "1")]
            + [(ACTION_CHECKBOX_NAME, a.pk) for a in queryset],
            submit_name="_top_up",
            submit_label="Write ledger rows",
        )


class ApiKeyChangeForm(forms.ModelForm):
    ip_allowlist = CommaListField(
        required=False, help_text="IPs or CIDR ranges, comma-separated; empty = any address."
    )
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in ApiKey.ALL_SCOPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked = all scopes.",
    )

    class Meta:
        model = ApiKey
        fields = ("name", "ip_allowlist", "scopes")

    def clean_ip_allowlist(self) -> list[str]:
        return clean_ip_allowlist(self.cleaned_data["ip_allowlist"])


class KeyStateFilter(NamedQueryFilter):
    title = "state"
    parameter_name = "state"
    queries = {
        "active": ("active", Q(revoked_at__isnull=True)),
        "revoked": ("revoked", Q(revoked_at__isnull=False)),
    }


@admin.register(ApiKey)
class ApiKeyAdmin(
    SecretShownOnceAddMixin, SaveChangedFieldsMixin, UUIDSearchMixin, SluiceModelAdmin
):
    form = ApiKeyChangeForm
    uuid_search_fields = ("pk", "account_id")
    list_display = (
        "prefix",
        "name",
        "account",
        "mode",
        "is_active",
        "scope_list",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("account",)
    list_filter = (KeyStateFilter, "mode", "created_at", "last_used_at")
    search_fields = ("prefix", "name", "account__name")
    search_help_text = "Key or account id, display prefix, name, account name."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    readonly_fields = (
        "id",
        "account_link",
        "mode",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    fields = (*readonly_fields[:4], "name", "ip_allowlist", "scopes", *readonly_fields[4:])
    actions = ("revoke",)

    @admin.display(description="active", boolean=True, ordering="revoked_at")
    def is_active(self, obj: ApiKey) -> bool:
        return obj.revoked_at is None

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes) or "all"

    @admin.display(description="account")
    def account_link(self, obj: ApiKey) -> str:
        return admin_link(obj.account)

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Revoke instead: a deleted key leaves contacts and bulks without their key.
        return False

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=key)
            self.log_change(request, key, "Revoked")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", level=messages.SUCCESS)

    # --- Keys are minted by api_key_create; the raw key is shown once and never stored ------

    add_form = ApiKeyCreateForm
    add_title = "Add API key"

    def add_form_initial(self, request: HttpRequest) -> dict[str, Any] | None:
        return {"account": request.GET.get("account")} if request.GET.get("account") else None

    def create_with_secrets(self, data: dict[str, Any]) -> tuple[ApiKey, str, list]:
        created = api_key_create(
            account=data["account"],
            mode=data["mode"],
            name=data["name"],
            ip_allowlist=data["ip_allowlist"],
            scopes=data["scopes"],
        )
        key = created.api_key
        return key, f"API key {key.prefix}… created", [("API key", created.raw_key)]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    uuid_search_fields = ("account_id", "contact_id")
    # Big tables: skip the second COUNT(*) over the whole table when filtering.
    show_full_result_count = False
    list_display = (
        "created_at",
        "account",
        "entry_type",
        "amount",
        "balance_after",
        "contact_link",
        "reason",
        "created_by",
    )
    list_select_related = ("account", "created_by")
    list_filter = ("entry_type", "created_at")
    search_fields = ("account__name", "reason", "created_by__username")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    fields = (
        "id",
        "account_link",
        "entry_type",
        "amount",
        "balance_after",
        "contact_link",
        "reason",
        "created_by",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="account")
    def account_link(self, obj: LedgerEntry) -> str:
        return admin_link(obj.account)

    @admin.display(description="contact")
    def contact_link(self, obj: LedgerEntry) -> str:
        if obj.contact_id is None:
            return "-"
        # Linked by id so the list needs no join to the contacts table.
        return admin_link(None, str(obj.contact_id)[:8] + "…", pk=obj.contact_id, model=Contact)
