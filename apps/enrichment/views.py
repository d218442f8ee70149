"""Thin API views for enrichment: validate, call one service, shape the answer."""

from __future__ import annotations

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
from apps.core.pagination import paginate

from . import selectors, serializers, services
from .models import Contact
from .validation import bulk_validated, contact_validated, sync_validated


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
        contact = services.contact_enqueue(account=account, api_key=api_key, clean=clean)
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
        contact, finished = services.contact_enrich_sync(
            account=account, api_key=api_key, clean=clean, timeout=timeout
        )
        if not finished:
            return _accepted(request, contact)
        finished_contact = selectors.contact_get(
            account=account, sandbox=api_key.sandbox, enrichment_id=str(contact.pk)
        )
        return Response(selectors.contact_data(finished_contact))


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
        bulk, contacts = services.bulk_enqueue(account=account, api_key=request.auth, clean=clean)
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
