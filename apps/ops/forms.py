"""Form fields and forms used by the Sluice admin pages."""

from __future__ import annotations

import ipaddress
from typing import Any

from django import forms
from django.conf import settings

from apps.accounts.models import Account, ApiKey, LedgerEntry, Plan
from apps.accounts.services import MAX_LEDGER_AMOUNT
from apps.enrichment.validation import Problems, clean_country_codes


class CommaListField(forms.CharField):
    """A list edited as comma-separated text ("US, GB"), stored as a JSON list."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        text = super().to_python(value) or ""
        return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial or []) != self.to_python(data)


def clean_countries(value: list[str]) -> list[str]:
    problems = Problems()
    codes = clean_country_codes(value, "countries", problems)
    if problems.errors:
        raise forms.ValidationError(problems.errors["countries"])
    return codes


def clean_ip_allowlist(value: list[str]) -> list[str]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise forms.ValidationError(f"'{item}' is not an IP address or CIDR range.")
    return value


def clean_provider_order(value: Any) -> dict[str, list[str]]:
    """``{"email": ["hunter", ...], ...}``: known kinds, known providers, no repeats."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise forms.ValidationError('Must be an object like {"email": ["sandbox"]}.')
    known = set(getattr(settings, "PROVIDERS", {}))
    for kind, names in value.items():
        if kind not in settings.PROVIDER_ORDER:
            raise forms.ValidationError(f"Unknown kind '{kind}'.")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise forms.ValidationError(f"'{kind}' must be a list of provider names.")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise forms.ValidationError(f"Unknown provider '{unknown[0]}' for '{kind}'.")
        if len(set(names)) != len(names):
            raise forms.ValidationError(f"'{kind}' lists a provider twice.")
    return value


SCOPE_CHOICES = [(s, s) for s in ApiKey.ALL_SCOPES]

# The most credits one form may add or take away: the ledger's own bound per entry, so a
# bigger number is a form error rather than a database overflow.
CREDITS_CHANGE_MAX = MAX_LEDGER_AMOUNT


class ApiKeyCreateForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.order_by("name"))
    name = forms.CharField(max_length=100, initial="default")
    mode = forms.ChoiceField(choices=ApiKey.MODES, initial=ApiKey.MODE_TEST)
    ip_allowlist = CommaListField(
        required=False, help_text="IPs or CIDR ranges, comma-separated; empty = any address."
    )
    scopes = forms.MultipleChoiceField(
        choices=SCOPE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked = all scopes.",
    )

    def clean_ip_allowlist(self) -> list[str]:
        return clean_ip_allowlist(self.cleaned_data["ip_allowlist"])


class AccountCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    plan = forms.ModelChoiceField(queryset=Plan.objects.order_by("code"), to_field_name="code")
    credits = forms.IntegerField(
        min_value=0,
        max_value=CREDITS_CHANGE_MAX,
        initial=0,
        help_text="Opening balance (a ledger row).",
    )
    mode = forms.ChoiceField(
        choices=ApiKey.MODES, initial=ApiKey.MODE_TEST, label="First key's mode"
    )
    personal_email_consent = forms.BooleanField(required=False)
    default_phone_country_codes = CommaListField(
        required=False, help_text="ISO alpha-2 codes, comma-separated, e.g. US, GB."
    )

    def clean_default_phone_country_codes(self) -> list[str]:
        return clean_countries(self.cleaned_data["default_phone_country_codes"])


class TopUpForm(forms.Form):
    entry_type = forms.ChoiceField(
        choices=[(t, label) for t, label in LedgerEntry.TYPES if t != LedgerEntry.CHARGE],
        initial=LedgerEntry.TOPUP,
        label="Type",
    )
    amount = forms.IntegerField(
        min_value=-CREDITS_CHANGE_MAX,
        max_value=CREDITS_CHANGE_MAX,
        help_text="Credits; only an adjustment may be negative.",
    )
    reason = forms.CharField(max_length=255, help_text="Kept on the ledger row.")

    def clean_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Must not be zero.")
        return amount

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("amount", 0) < 0 and data.get("entry_type") != LedgerEntry.ADJUSTMENT:
            self.add_error("amount", "Only an adjustment may be negative.")
        return data
