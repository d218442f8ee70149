"""Pronto's three operations over Sluice's services: translate, call one service, reshape."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.keycache import CachedKeyView
from apps.core.api import json_object, json_response
from apps.enrichment import selectors, services

from . import representations, serializers, validation
from .errors import ProntoErrors

TAGS = ["compat: pronto"]
_ERRORS = {
    400: "Body is not valid JSON or not an object",
    401: "Missing, malformed, unknown or revoked API key",
    402: "Out of credits (live keys)",
    403: "Plan without API access, IP not allowed, or key lacks scope",
    404: "Unknown id, or it belongs to another account or mode",
    409: "The key or its account changed during the request; retry",
    413: "Body larger than the server accepts",
    422: "Invalid body, or personal_email without consent; errors maps fields to messages",
    429: "Rate limited; see Retry-After",
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(serializers.ProntoErrorSerializer, description=_ERRORS[code])
        for code in codes
    }


class SingleEnrichView(ProntoErrors, CachedKeyView, APIView):
    """Sluice's ``POST /enrich`` in Pronto's words: 202 with the enrichment_id to poll."""

    # A CachedKeyView: contact_enqueue's INSERT re-checks the key (apps.accounts.keycache).
    required_scope = "enrich"

    @extend_schema(
        operation_id="pronto_single_enrich",
        tags=TAGS,
        request=serializers.ProntoSingleEnrichSerializer,
        responses={
            202: serializers.ProntoAcceptedSerializer,
            **_errors(400, 401, 402, 403, 409, 413, 422, 429),
        },
        summary="Pronto: enrich a single contact (asynchronous)",
    )
    def post(self, request: Request) -> HttpResponse:
        account, api_key = request.user, request.auth
        clean = validation.contact_validated(
            json_object(request), consent=account.personal_email_consent
        )
        contact = services.contact_enqueue(account=account, api_key=api_key, clean=clean)
        return json_response(
            request,
            representations.accepted_object(contact),
            status=202,
            headers={"Location": representations.contact_path(str(contact.pk))},
        )


class BulkEnrichView(ProntoErrors, APIView):
    """Sluice's ``POST /enrich/bulk`` in Pronto's words, all or nothing."""

    # Not a CachedKeyView: bulk_enqueue does not re-check the key in its INSERT, so the key
    # is looked up on every request, as for Sluice's own bulk.
    required_scope = "enrich"

    @extend_schema(
        operation_id="pronto_bulk_enrich",
        tags=TAGS,
        request=serializers.ProntoBulkEnrichSerializer,
        responses={
            202: serializers.ProntoBulkAcceptedSerializer,
            **_errors(400, 401, 402, 403, 413, 422, 429),
        },
        summary="Pronto: enrich up to the plan's bulk max of contacts (asynchronous)",
    )
    def post(self, request: Request) -> Response:
        account = request.user
        clean = validation.bulk_validated(
            json_object(request),
            consent=account.personal_email_consent,
            bulk_max=account.plan.bulk_max or 0,
        )
        bulk, _ = services.bulk_enqueue(account=account, api_key=request.auth, clean=clean)
        return Response(representations.bulk_accepted_object(bulk), status=202)


class ContactDetailView(ProntoErrors, APIView):
    """Sluice's ``GET /contacts/{id}`` in Pronto's shape (also what its webhooks carry)."""

    required_scope = "read"

    @extend_schema(
        operation_id="pronto_contact_retrieve",
        tags=TAGS,
        responses={
            200: serializers.ProntoContactSerializer,
            **_errors(401, 403, 404, 429),
        },
        summary="Pronto: get a single contact's enrichment result",
    )
    def get(self, request: Request, enrichment_id: str) -> Response:
        contact = selectors.contact_get(
            account=request.user, sandbox=request.auth.sandbox, enrichment_id=enrichment_id
        )
        return Response(representations.contact_object(selectors.contact_data(contact)))
