"""Thin views of the prospiq dialect: translate the body, call Sluice's service, answer in
prospiq's shape. Authentication, scopes, rate limits, charging and delivery are Sluice's."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import selectors as account_selectors
from apps.accounts.keycache import CachedKeyView
from apps.core.api import json_object
from apps.core.errors import InsufficientCredits, InvalidRequest
from apps.core.timefmt import iso
from apps.enrichment import selectors as enrichment_selectors
from apps.enrichment import services as enrichment_services
from apps.enrichment.models import Contact
from apps.webhooks import selectors as webhook_selectors
from apps.webhooks import services as webhook_services
from apps.webhooks.models import Delivery

from . import errors, selectors, serializers, shapes, validation
from .webhooks import FORMAT

TAGS = ["compat: prospiq"]

_ERRORS = {
    400: "Malformed request body or invalid JSON",
    401: "Missing, malformed, or revoked API key",
    402: "Out of credits (live keys)",
    403: "Plan without API access, IP not in the key's allowlist, or key lacks the scope",
    404: "Resource not found, or it belongs to another account",
    409: "Duplicate resource (a duplicate active subscription)",
    422: "Validation failure: the message names each field",
    429: "Rate limit exceeded; see Retry-After",
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(serializers.ProspiqErrorSerializer, description=_ERRORS[code])
        for code in codes
    }


def _sandbox(request: Request) -> dict[str, bool]:
    """The seed's sandbox marker, on the answers of a sandbox key's enrichments."""
    return {"_sandbox": True} if request.auth.sandbox else {}


class ProspiqView(APIView):
    """Every error of this dialect is ``{"error": "..."}`` (errors.py)."""

    def get_exception_handler(self) -> Any:
        return errors.exception_handler


class EnrichView(CachedKeyView, ProspiqView):
    """Synchronous, as prospiq's: Sluice's intake, then a wait for the worker's finish."""

    required_scope = "enrich"

    @extend_schema(
        operation_id="prospiq_enrich",
        tags=TAGS,
        request=serializers.ProspiqEnrichSerializer,
        responses={
            200: serializers.ProspiqEnrichResultSerializer,
            202: OpenApiResponse(
                serializers.ProspiqEnrichPendingSerializer,
                description="Not finished within ENRICH_SYNC_TIMEOUT_SECONDS: it finishes "
                "later as any contact does",
            ),
            **_errors(400, 401, 402, 403, 422, 429),
        },
        summary="Enrich a contact (prospiq's POST /v1/enrich)",
    )
    def post(self, request: Request) -> Response:
        account, api_key = request.user, request.auth
        enrich = validation.enrich_validated(json_object(request), account=account)
        contact, attempts = enrichment_services.contact_enrich_sync(
            account=account,
            api_key=api_key,
            clean=enrich.contact,
            timeout=settings.ENRICH_SYNC_TIMEOUT_SECONDS,
        )
        location = {"Location": f"/api/v1/contacts/{contact.pk}"}
        if attempts is None:
            body = {"status": shapes.PENDING, "search_id": str(contact.pk), **_sandbox(request)}
            return Response(body, status=202, headers=location)
        data = enrichment_selectors.contact_data(contact, attempts=attempts)
        result = shapes.contact_result(data)
        if result["status"] == "NO_CREDITS":
            # The seed: NO_CREDITS only inside a bulk; a single enrichment is a 402.
            raise InsufficientCredits()
        for name in shapes.RESULT_FIELDS:
            if name not in enrich.fields:
                result.pop(name, None)
        body = {
            **result,
            "credits_remaining": account_selectors.balance(account=account),
            **_sandbox(request),
        }
        return Response(body, headers=location)


class BulkEnrichView(ProspiqView):
    """All or nothing, at most the plan's bulk max, answered with every result once the
    batch has finished (or 202 with the ids when it takes longer than the wait).

    Not a ``CachedKeyView``: a bulk's INSERTs do not re-check a cached key."""

    required_scope = "enrich"

    @extend_schema(
        operation_id="prospiq_enrich_bulk",
        tags=TAGS,
        request=serializers.ProspiqBulkSerializer,
        responses={
            200: serializers.ProspiqBulkSerializerOut,
            202: OpenApiResponse(
                serializers.ProspiqBulkPendingSerializer,
                description="Not finished within ENRICH_SYNC_TIMEOUT_SECONDS: the ids; the "
                "batch finishes later as any bulk does",
            ),
            **_errors(400, 401, 402, 403, 422, 429),
        },
        summary="Bulk enrich (prospiq's POST /v1/enrich/bulk)",
    )
    def post(self, request: Request) -> Response:
        account, api_key = request.user, request.auth
        clean = validation.bulk_validated(json_object(request), account=account)
        bulk, contacts, finished = enrichment_services.bulk_enrich_sync(
            account=account,
            api_key=api_key,
            clean=clean,
            timeout=settings.ENRICH_SYNC_TIMEOUT_SECONDS,
        )
        location = {"Location": f"/api/v1/bulk/{bulk.pk}"}
        if not finished:
            body = {
                "status": "pending",
                "bulk_id": str(bulk.pk),
                "total": bulk.total,
                "results": [shapes.pending_result(_accepted(c)) for c in contacts],
                **_sandbox(request),
            }
            return Response(body, status=202, headers=location)
        done = enrichment_selectors.bulk_data(
            enrichment_selectors.bulk_get(account=account, sandbox=api_key.sandbox, bulk_id=bulk.pk)
        )
        finished_contacts = selectors.bulk_contacts(
            account=account, sandbox=api_key.sandbox, bulk_id=bulk.pk
        )
        body = {
            "status": "completed",
            "bulk_id": done["bulk_id"],
            **shapes.bulk_counts(done),
            "credits_remaining": account_selectors.balance(account=account),
            "results": [
                shapes.bulk_result(c) for c in enrichment_selectors.contacts_data(finished_contacts)
            ],
            **_sandbox(request),
        }
        return Response(body, headers=location)


def _accepted(contact: Contact) -> dict[str, Any]:
    # The stored rows as bulk_create returned them: no attempts to read yet.
    return {
        "enrichment_id": str(contact.pk),
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "company_name": contact.company_name,
        "domain": contact.domain,
    }


class CreditsView(ProspiqView):
    required_scope = "read"

    @extend_schema(
        operation_id="prospiq_credits",
        tags=TAGS,
        responses={200: serializers.ProspiqCreditsSerializer, **_errors(401, 403, 429)},
        summary="Credit balance (prospiq's GET /v1/credits)",
    )
    def get(self, request: Request) -> Response:
        return Response(account_selectors.credits_data(account=request.user))


class SubscribeView(ProspiqView):
    """A subscription is a Sluice endpoint for one event type whose deliveries are rendered
    in prospiq's shape."""

    required_scope = "webhooks"

    @extend_schema(
        operation_id="prospiq_subscribe",
        tags=TAGS,
        request=serializers.ProspiqSubscribeSerializer,
        responses={
            200: serializers.ProspiqSubscriptionCreatedSerializer,
            **_errors(400, 401, 403, 409, 422, 429),
        },
        summary="Subscribe to an event (prospiq's POST /v1/subscribe; the secret is shown "
        "only here)",
    )
    def post(self, request: Request) -> Response:
        event_type, url = validation.subscribe_validated(json_object(request))
        try:
            endpoint = webhook_services.endpoint_create(
                account=request.user,
                sandbox=request.auth.sandbox,
                url=url,
                events=[event_type],
                body_format=FORMAT,
            )
        except InvalidRequest as refused:  # the URL's rules: named target_url
            raise validation.renamed(refused) from None
        return Response(
            shapes.subscription_created(webhook_selectors.endpoint_data(endpoint, with_secret=True))
        )

    @extend_schema(
        operation_id="prospiq_unsubscribe",
        tags=TAGS,
        parameters=[OpenApiParameter("id", str, required=True, description="Subscription id")],
        responses={200: serializers.ProspiqSuccessSerializer, **_errors(401, 403, 404, 422, 429)},
        summary="Delete a subscription (prospiq's DELETE /v1/subscribe?id=)",
    )
    def delete(self, request: Request) -> Response:
        subscription_id = request.query_params.get("id", "").strip()
        if not subscription_id:
            raise InvalidRequest(details={"id": "This query parameter is required."})
        endpoint = selectors.subscription_get(
            account=request.user, sandbox=request.auth.sandbox, subscription_id=subscription_id
        )
        webhook_services.endpoint_delete(endpoint=endpoint)
        return Response({"success": True})


class WebhookListView(ProspiqView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="prospiq_webhook_list",
        tags=TAGS,
        responses={200: serializers.ProspiqWebhooksSerializer, **_errors(401, 403, 429)},
        summary="Active subscriptions and the event catalogue (prospiq's GET /v1/webhooks)",
    )
    def get(self, request: Request) -> Response:
        endpoints = selectors.subscriptions(account=request.user, sandbox=request.auth.sandbox)
        listed = webhook_selectors.endpoints_data(endpoints)
        return Response(
            {
                "subscriptions": [shapes.subscription(data) for data in listed],
                "available_events": shapes.available_events(),
            }
        )


class WebhookTestView(ProspiqView):
    """Sluice's test delivery of the subscription's event, attempted in this request so that
    the answer can say how the receiver answered, as prospiq's does."""

    required_scope = "webhooks"

    @extend_schema(
        operation_id="prospiq_webhook_test",
        tags=TAGS,
        request=serializers.ProspiqTestRequestSerializer,
        responses={
            200: serializers.ProspiqTestSerializer,
            202: OpenApiResponse(
                serializers.ProspiqTestSerializer,
                description="A webhooks worker took the delivery first; it is sent as usual",
            ),
            **_errors(400, 401, 403, 404, 409, 422, 429),
        },
        summary="Send a sample event to a subscription (prospiq's POST /v1/webhooks/test)",
    )
    def post(self, request: Request) -> Response:
        endpoint = selectors.subscription_get(
            account=request.user,
            sandbox=request.auth.sandbox,
            subscription_id=validation.subscription_id(json_object(request)),
        )
        queued = webhook_services.endpoint_test(endpoint=endpoint)
        outcome = webhook_services.delivery_attempt(delivery_id=str(queued.pk))
        if outcome is None:
            return Response(
                {
                    "success": False,
                    "message": f"Test webhook queued for {endpoint.url}",
                    "status_code": None,
                },
                status=202,
            )
        delivery = webhook_selectors.delivery_data(
            webhook_selectors.delivery_get(endpoint=endpoint, delivery_id=str(queued.pk))
        )
        attempt = delivery["attempts"][-1] if delivery["attempts"] else {}
        code = attempt.get("status_code")
        if outcome == Delivery.SUCCEEDED:
            text = f"Test webhook delivered to {endpoint.url}"
        else:
            why = f"HTTP {code}" if code else (attempt.get("error") or outcome)
            text = f"Test webhook to {endpoint.url} failed: {why}"
        return Response(
            {"success": outcome == Delivery.SUCCEEDED, "message": text, "status_code": code}
        )


class PollView(ProspiqView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="prospiq_webhook_poll",
        tags=TAGS,
        parameters=[
            OpenApiParameter(
                "event", str, OpenApiParameter.PATH, enum=list(shapes.EVENTS), required=True
            ),
            OpenApiParameter(
                "since",
                str,
                description="RFC 3339; only events after it (at millisecond precision)",
            ),
        ],
        responses={200: serializers.ProspiqPollSerializer, **_errors(401, 403, 422, 429)},
        summary="Poll stored events of one type, last 24 h, up to 25, oldest first "
        "(prospiq's GET /v1/webhooks/poll/{event})",
    )
    def get(self, request: Request, event: str) -> Response:
        events = selectors.events_poll(
            account=request.user,
            sandbox=request.auth.sandbox,
            event_type=validation.event_name_validated(event),
            since=request.query_params.get("since") or None,
        )
        return Response(
            {
                "events": [
                    {
                        "id": e.id,
                        "event": shapes.event_name(e.type),
                        # The column, not the body: events from before modes lack the key.
                        "payload": shapes.event_body({**e.payload, "sandbox": e.sandbox}),
                        "created_at": iso(e.created_at),
                    }
                    for e in events
                ]
            }
        )
