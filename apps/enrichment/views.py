"""Thin API views for enrichment: validate, call one service, shape the answer."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.keycache import CachedKeyView
from apps.core.api import (
    LIST_PARAMETERS,
    error_responses,
    json_object,
    json_response,
    list_params,
)
from apps.core.errors import InvalidRequest
from apps.core.pagination import paginate, paginate_ordered

from . import selectors, serializers, services
from .models import Contact, List
from .services import lists
from .validation import bulk_validated, contact_validated, sync_validated


def _list_named(request: Request, list_id: str | None) -> List | None:
    """The request's ``list_id`` as the key's list; 404 ``list_not_found`` otherwise."""
    if list_id is None:
        return None
    return lists.list_for_account(request.user, list_id, sandbox=request.auth.sandbox)


def _accepted(request: Request, contact: Contact) -> HttpResponse:
    """The 202 of an accepted contact, with its ``Location``."""
    return json_response(
        request,
        selectors.contact_accepted_data(contact),
        status=202,
        headers={"Location": f"/api/v1/contacts/{contact.pk}"},
    )


class EnrichView(CachedKeyView, APIView):
    """Validate, store, 202. Authenticated from the process's key cache: the INSERT re-checks
    the key (``apps.accounts.keycache``), which also decides what a refusal answers."""

    required_scope = "enrich"

    @extend_schema(
        operation_id="enrich",
        request=serializers.EnrichRequestSerializer,
        responses={
            202: serializers.AcceptedSerializer,
            **error_responses(400, 401, 402, 403, 409, 413, 422, 429),
        },
        summary="Enrich one contact (asynchronous)",
    )
    def post(self, request: Request) -> HttpResponse:
        account, api_key = request.user, request.auth
        clean = contact_validated(json_object(request), consent=account.personal_email_consent)
        contact = services.contact_enqueue(
            account=account,
            api_key=api_key,
            clean=clean,
            list_obj=_list_named(request, clean.list_id),
        )
        return _accepted(request, contact)


class EnrichSyncView(CachedKeyView, APIView):
    """``POST /enrich``, then wait for the result: 200 with the finished contact, or the 202
    of the asynchronous path when it does not finish within ``timeout``."""

    required_scope = "enrich"

    @extend_schema(
        operation_id="enrich_sync",
        request=serializers.EnrichSyncRequestSerializer,
        responses={
            200: serializers.ContactSerializer,
            202: serializers.AcceptedSerializer,
            **error_responses(400, 401, 402, 403, 409, 413, 422, 429),
        },
        summary="Enrich one contact and wait for the result (synchronous)",
    )
    def post(self, request: Request) -> HttpResponse:
        account, api_key = request.user, request.auth
        clean, timeout = sync_validated(
            json_object(request), consent=account.personal_email_consent
        )
        contact, attempts = services.contact_enrich_sync(
            account=account,
            api_key=api_key,
            clean=clean,
            timeout=timeout,
            list_obj=_list_named(request, clean.list_id),
        )
        if attempts is None:
            return _accepted(request, contact)
        return Response(selectors.contact_data(contact, attempts=attempts))


class BulkEnrichView(APIView):
    required_scope = "enrich"

    @extend_schema(
        operation_id="enrich_bulk",
        request=serializers.BulkRequestSerializer,
        responses={
            202: serializers.BulkAcceptedSerializer,
            **error_responses(400, 401, 402, 403, 409, 413, 422, 429),
        },
        summary="Enrich a batch of contacts (asynchronous, all or nothing)",
    )
    def post(self, request: Request) -> Response:
        body = json_object(request)
        account = request.user
        clean = bulk_validated(
            body, consent=account.personal_email_consent, bulk_max=account.plan.bulk_max or 0
        )
        bulk, contacts = services.bulk_enqueue(
            account=account,
            api_key=request.auth,
            clean=clean,
            list_obj=_list_named(request, clean.list_id),
        )
        return Response(
            {
                "bulk_id": str(bulk.pk),
                "status": bulk.status,
                "total": bulk.total,
                "contacts": [{"enrichment_id": str(c.pk), "custom": c.custom} for c in contacts],
            },
            status=202,
            headers={"Location": f"/api/v1/bulk/{bulk.pk}"},
        )


class ContactDetailView(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="contact_retrieve",
        responses={200: serializers.ContactSerializer, **error_responses(401, 403, 404, 429)},
        summary="Get one enrichment",
    )
    def get(self, request: Request, enrichment_id: str) -> Response:
        contact = selectors.contact_get(
            account=request.user, sandbox=request.auth.sandbox, enrichment_id=enrichment_id
        )
        return Response(selectors.contact_data(contact))


class ContactListView(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="contact_list",
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter("status", str, enum=["pending", "finished"]),
            OpenApiParameter(
                "result_status", str, enum=["VERIFIED", "NOT_FOUND", "NO_CREDITS", "FAILED"]
            ),
            OpenApiParameter("bulk_id", str),
            OpenApiParameter("updated_after", str, description="ISO-8601 timestamp"),
        ],
        responses={200: serializers.ContactListSerializer, **error_responses(401, 403, 422, 429)},
        summary="List enrichments, newest first",
    )
    def get(self, request: Request) -> Response:
        cursor, limit = list_params(request)
        queryset = selectors.contact_list(
            account=request.user, sandbox=request.auth.sandbox, filters=request.query_params
        )
        return Response(
            paginate(queryset, cursor=cursor, limit=limit, serialize=selectors.contacts_data)
        )


class BulkDetailView(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="bulk_retrieve",
        responses={200: serializers.BulkSerializer, **error_responses(401, 403, 404, 429)},
        summary="Progress of a bulk request",
    )
    def get(self, request: Request, bulk_id: str) -> Response:
        return Response(
            selectors.bulk_data(
                selectors.bulk_get(
                    account=request.user, sandbox=request.auth.sandbox, bulk_id=bulk_id
                )
            )
        )


# --- Lists ---------------------------------------------------------------------------------------


def _list(request: Request, list_id: str) -> List:
    return lists.list_for_account(request.user, list_id, sandbox=request.auth.sandbox)


class ListScopeMixin:
    """Reading lists takes the ``read`` scope; changing them (and their entries) ``enrich``.

    The class attribute is the writes' scope: the idempotency middleware reads it from the
    class for the POST it records (``apps.core.idempotency.required_scope``)."""

    required_scope = "enrich"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method in ("GET", "HEAD"):
            self.required_scope = "read"  # before the permission check in initial()
        super().initial(request, *args, **kwargs)  # type: ignore[misc]


class ListListView(ListScopeMixin, APIView):
    """Lists are the key's account's in the key's mode (a sandbox key's lists hold sandbox
    contacts only). Reading takes the `read` scope, changing `enrich`."""

    @extend_schema(
        operation_id="list_list",
        tags=["lists"],
        parameters=LIST_PARAMETERS,
        responses={200: serializers.ListPageSerializer, **error_responses(401, 403, 422, 429)},
        summary="List lists: pinned first, then most recently updated",
    )
    def get(self, request: Request) -> Response:
        cursor, limit = list_params(request)
        queryset = selectors.list_list(account=request.user, sandbox=request.auth.sandbox)
        return Response(
            paginate_ordered(
                queryset,
                order=selectors.LIST_ORDER,
                cursor=cursor,
                limit=limit,
                serialize=selectors.lists_data,
            )
        )

    @extend_schema(
        operation_id="list_create",
        tags=["lists"],
        request=serializers.ListCreateSerializer,
        responses={201: serializers.ListSerializer, **error_responses(400, 401, 403, 422, 429)},
        summary="Create a list",
    )
    def post(self, request: Request) -> Response:
        fields = lists.list_fields_clean(json_object(request), partial=False)
        created = lists.list_create(
            account=request.user, sandbox=request.auth.sandbox, fields=fields
        )
        return Response(
            selectors.list_data(created),
            status=201,
            headers={"Location": f"/api/v1/lists/{created.pk}"},
        )


class ListDetailView(ListScopeMixin, APIView):
    """Another account's or mode's list is 404 `list_not_found`. Reading takes the `read`
    scope, changing `enrich`."""

    @extend_schema(
        operation_id="list_retrieve",
        tags=["lists"],
        responses={
            200: serializers.ListSerializer,
            **error_responses(401, 403, 404, 429),
        },
        summary="Get one list",
    )
    def get(self, request: Request, list_id: str) -> Response:
        return Response(selectors.list_data(_list(request, list_id)))

    @extend_schema(
        operation_id="list_update",
        tags=["lists"],
        request=serializers.ListUpdateSerializer,
        responses={
            200: serializers.ListSerializer,
            **error_responses(400, 401, 403, 404, 422, 429),
        },
        summary="Change a list's name, description, color or pinning",
    )
    def patch(self, request: Request, list_id: str) -> Response:
        list_obj = _list(request, list_id)
        fields = lists.list_fields_clean(json_object(request), partial=True)
        return Response(selectors.list_data(lists.list_update(list_obj=list_obj, fields=fields)))

    @extend_schema(
        operation_id="list_delete",
        tags=["lists"],
        responses={204: None, **error_responses(401, 403, 404, 429)},
        summary="Delete a list (its contacts stay)",
    )
    def delete(self, request: Request, list_id: str) -> Response:
        lists.list_delete(list_obj=_list(request, list_id))
        return Response(status=204)


class ListContactsView(ListScopeMixin, APIView):
    """A list's contacts: another account's or mode's list is 404 `list_not_found`, contact
    404 `contact_not_found`. Reading takes the `read` scope, adding `enrich`; an addition
    emits `contact.added_to_list`."""

    @extend_schema(
        operation_id="list_contacts",
        tags=["lists"],
        parameters=LIST_PARAMETERS,
        responses={
            200: serializers.ContactListSerializer,
            **error_responses(401, 403, 404, 422, 429),
        },
        summary="The list's contacts (the GET /contacts/{id} objects), most recently added first",
    )
    def get(self, request: Request, list_id: str) -> Response:
        list_obj = _list(request, list_id)
        cursor, limit = list_params(request)
        return Response(
            paginate(
                selectors.list_entries(list_obj=list_obj),
                cursor=cursor,
                limit=limit,
                serialize=selectors.entry_contacts_data,
            )
        )

    @extend_schema(
        operation_id="list_contact_add",
        tags=["lists"],
        request=serializers.ListContactAddSerializer,
        responses={
            201: serializers.ListEntrySerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429),
        },
        summary="Add a contact to a list (409 already_in_list; 404 contact_not_found or "
        "list_not_found for another account's or mode's)",
    )
    def post(self, request: Request, list_id: str) -> Response:
        list_obj = _list(request, list_id)
        body = json_object(request)
        unknown = sorted(set(body) - {"enrichment_id"})
        enrichment_id = body.get("enrichment_id")
        errors = dict.fromkeys(unknown, "Unknown field.")
        if enrichment_id is None:
            errors["enrichment_id"] = "This field is required."
        elif not isinstance(enrichment_id, str):
            errors["enrichment_id"] = "Must be an enrichment id (a string)."
        if errors:
            raise InvalidRequest(details=errors)
        entry = lists.contact_add_to_list(list_obj=list_obj, enrichment_id=enrichment_id)
        return Response(selectors.entry_data(entry), status=201)


class ListContactDetailView(ListScopeMixin, APIView):
    """Takes the `enrich` scope; the contact itself stays."""

    @extend_schema(
        operation_id="list_contact_remove",
        tags=["lists"],
        responses={204: None, **error_responses(401, 403, 404, 429)},
        summary="Remove a contact from a list (404 not_in_list when it is not there)",
    )
    def delete(self, request: Request, list_id: str, enrichment_id: str) -> Response:
        lists.contact_remove_from_list(
            list_obj=_list(request, list_id), enrichment_id=enrichment_id
        )
        return Response(status=204)
