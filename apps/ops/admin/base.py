"""Shared by every Sluice ModelAdmin: forged-input guards, id search, filters, form pages and
the add page that creates through a service and shows the new secrets once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Field, Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from apps.core.errors import SluiceError


class UUIDSearchMixin:
    """A search term that is a UUID matches these fields exactly (an indexed lookup); only
    when that finds nothing does it go through ``search_fields`` like any other term (a
    client's own UUID in ``custom``, an Idempotency-Key)."""

    uuid_search_fields: tuple[str, ...] = ("pk",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        try:
            value = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        match = Q()
        for field in self.uuid_search_fields:
            match |= Q(**{field: value})
        exact = queryset.filter(match)
        if exact.exists():
            return exact, False
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]


def pk_is_valid(field: Field, value: str) -> bool:
    """Whether ``value`` (from a form) can be looked up as this primary key at all."""
    if "\x00" in value:
        return False
    try:
        field.run_validators(field.to_python(value))
    except (ValidationError, TypeError, ValueError):
        return False
    return True


class SluiceModelAdmin(admin.ModelAdmin):
    """The ModelAdmin every Sluice admin derives from."""

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        # A NUL in a filter value reaches PostgreSQL, which refuses it (a 500); Django's own
        # answer to a lookup it cannot run is a redirect to the bare list with ?e=1. The
        # search box has its own form, which already reports a NUL as an error.
        for name, values in request.GET.lists():
            if name != SEARCH_VAR and any("\x00" in v for v in [name, *values]):
                raise IncorrectLookupParameters(f"NUL character in {name!r}")
        return super().get_changelist_instance(request)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # Django catches what the pk field's to_python refuses, not what the database does
        # (a NUL in the event's text id): such an id names no row.
        if from_field is None and not pk_is_valid(self.model._meta.pk, object_id):
            return None
        return super().get_object(request, object_id, from_field)

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        # Django filters ``pk__in`` with the posted ids as they come: a forged one that is no
        # UUID (or an integer out of range) is a 500. Such ids select nothing.
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        valid = [v for v in selected if pk_is_valid(self.model._meta.pk, v)]
        if len(valid) != len(selected):
            post = request.POST.copy()
            post.setlist(ACTION_CHECKBOX_NAME, valid)
            request.POST = post
        return super().response_action(request, queryset)


class SaveChangedFieldsMixin:
    """Save only the form's changed fields on change.

    A plain ``save()`` writes every column back as it was read; on rows that workers update
    concurrently (an account's ``credits``, a key's ``revoked_at``) that would undo their
    writes.
    """

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            return
        concrete = {f.name for f in obj._meta.concrete_fields}
        fields = [name for name in form.changed_data if name in concrete]
        if fields:
            obj.save(update_fields=fields)


class ActionsOnlyMixin:
    """Rows the product writes and staff change only through actions (which call services):
    the change page shows them without Save buttons, and a forged POST saves nothing."""

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        return None

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None

    def render_change_form(
        self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context.update(show_save=False, show_save_and_continue=False)
        context.update(show_save_and_add_another=False)
        return super().render_change_form(request, context, *args, **kwargs)  # type: ignore[misc]


class ReadOnlyAdmin(SluiceModelAdmin):
    """Rows written by the product (attempts, ledger, events): staff look, nobody edits."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class StatusClassFilter(admin.SimpleListFilter):
    """HTTP status by class (2xx … 5xx, or none): Django's default filter on an integer
    column runs a DISTINCT over the whole table on each page load."""

    title = "response status"
    parameter_name = "status"
    field_name = "status_code"
    CLASSES = ("2xx", "3xx", "4xx", "5xx")

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(c, c) for c in self.CLASSES] + [("none", "no response")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "none":
            return queryset.filter(**{f"{self.field_name}__isnull": True})
        if value in self.CLASSES:
            low = int(value[0]) * 100
            return queryset.filter(
                **{f"{self.field_name}__gte": low, f"{self.field_name}__lt": low + 100}
            )
        return queryset


class FixedValuesFilter(admin.SimpleListFilter):
    """A filter over a known list of values (``values``, or ``known_values()`` when they come
    from settings), instead of Django's DISTINCT over the whole table on each page load.
    Filters ``field_name``, by default the ``parameter_name``."""

    values: tuple[str, ...] = ()
    field_name = ""

    def known_values(self) -> Iterable[str]:
        return self.values

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(v, v) for v in self.known_values()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(**{self.field_name or self.parameter_name: self.value()})
        return queryset


class NamedQueryFilter(admin.SimpleListFilter):
    """A filter with a few fixed choices, each a query: ``queries`` maps the value in the URL
    to (label, ``Q``). An unknown value filters nothing. (Not ``choices``: that is the
    method Django's admin calls to list them.)"""

    queries: dict[str, tuple[str, Q]] = {}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(value, label) for value, (label, _) in self.queries.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        choice = self.queries.get(self.value() or "")
        return queryset.filter(choice[1]) if choice else queryset


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def pretty_json(value: Any) -> str:
    if value is None:
        return "-"
    return format_html(
        '<pre style="margin:0;white-space:pre-wrap">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True),
    )


def admin_link(obj: Model | None, text: Any = None, *, pk: Any = None, model: Any = None) -> str:
    """A link to a row's admin change page, from the row or from its model and primary key."""
    if obj is None and pk is None:
        return "-"
    meta = (model or obj)._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk or obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def short_id(value: Any) -> str:
    return format_html('<code title="{}">{}…</code>', value, str(value)[:8])


def secret_shown_once(
    request: HttpRequest,
    *,
    model_admin: admin.ModelAdmin,
    obj: Model,
    title: str,
    secrets: list[tuple[str, str]],
    next_url: str,
) -> HttpResponse:
    """Show freshly minted secrets on one page that is never cached; they are not stored."""
    response = TemplateResponse(
        request,
        "admin/ops/secret_once.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "title": title,
            "object": obj,
            "secrets": secrets,
            "next_url": next_url,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


def error_text(exc: SluiceError) -> str:
    """A domain error as one line for a form or a message: its text and each detail."""
    return " ".join([exc.message, *(str(v) for v in exc.details.values())])


def form_page(
    request: HttpRequest, model_admin: admin.ModelAdmin, **context: Any
) -> TemplateResponse:
    """A plain form inside the admin (custom add pages, action forms such as the top-up)."""
    return TemplateResponse(
        request,
        "admin/ops/form_page.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            **context,
        },
    )


class SecretShownOnceAddMixin:
    """An add page for rows that come with a secret (an account, an API key): a plain form,
    one call to the service that creates the row and mints the secret, then the secret on
    a page shown once. The admin's own ModelForm would save the row without its secret.

    Subclasses set ``add_form`` and ``add_title`` and implement ``create_with_secrets``.
    """

    add_form: type[forms.Form]
    add_title: str

    def add_form_initial(self, request: HttpRequest) -> dict[str, Any] | None:
        return None

    def create_with_secrets(self, data: dict[str, Any]) -> tuple[Model, str, list[tuple[str, str]]]:
        """Create through the service: the new row, the page's title and (label, secret)s.
        A ``SluiceError`` it raises is shown as a form error."""
        raise NotImplementedError

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        form = self.add_form(request.POST or None, initial=self.add_form_initial(request))
        if request.method == "POST" and form.is_valid():
            try:
                obj, title, secrets = self.create_with_secrets(form.cleaned_data)
            except SluiceError as exc:
                form.add_error(None, error_text(exc))
            else:
                self.log_addition(request, obj, [{"added": {}}])  # type: ignore[attr-defined]
                meta = obj._meta
                return secret_shown_once(
                    request,
                    model_admin=self,  # type: ignore[arg-type]
                    obj=obj,
                    title=title,
                    secrets=secrets,
                    next_url=reverse(
                        f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]
                    ),
                )
        return form_page(request, self, title=self.add_title, form=form)  # type: ignore[arg-type]
