"""Thin API views for webhook endpoints, deliveries and events (SPEC §6)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import LIST_PARAMETERS, error_responses, json_object, list_params
from apps.core.errors import Forbidden, InvalidRequest
from apps.core.pagination import paginate
from apps.core.timefmt import iso

from . import selectors, serializers, services
from .models import Delivery, Endpoint, Event


def _valid(serializer_class: type[drf_serializers.Serializer], body: dict[str, Any]) -> dict:
    """Validate ``body``; unknown fields are an error too (a typo must not pass silently)."""
    unknown = sorted(set(body) - set(serializer_class().fields))
    if unknown:
        raise InvalidRequest(details=dict.fromkeys(unknown, "Unknown field."))
    serializer = serializer_class(data=body)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _optional_object(request: Request) -> dict[str, Any]:
    return json_object(request) if request.body else {}


def _endpoint(request: Request, endpoint_id: str) -> Endpoint:
    """The key's account's endpoint in the key's mode; any other is a 404."""
    return selectors.endpoint_get(
        account=request.user, sandbox=request.auth.sandbox, endpoint_id=endpoint_id
    )


class WebhookListView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_list",
        parameters=LIST_PARAMETERS,
        responses={200: serializers.EndpointListSerializer, **error_responses(401, 403, 422, 429)},
        summary="List webhook endpoints, newest first",
    )
    def get(self, request: Request) -> Response:
        cursor, limit = list_params(request)
        queryset = selectors.endpoint_list(account=request.user, sandbox=request.auth.sandbox)
        return Response(
            paginate(queryset, cursor=cursor, limit=limit, serialize=selectors.endpoints_data)
        )

    @extend_schema(
        operation_id="webhook_create",
        request=serializers.EndpointCreateSerializer,
        responses={
            201: serializers.EndpointWithSecretSerializer,
            **error_responses(400, 401, 403, 409, 422, 429),
        },
        summary="Subscribe an endpoint (the secret is shown only here; 422 "
        "too_many_endpoints past WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT in the key's mode)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(serializers.EndpointCreateSerializer, json_object(request))
        endpoint = services.endpoint_create(
            account=request.user, sandbox=request.auth.sandbox, **data
        )
        return Response(
            selectors.endpoint_data(endpoint, with_secret=True),
            status=201,
            headers={"Location": f"/api/v1/webhooks/{endpoint.pk}"},
        )


class WebhookDetailView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_retrieve",
        responses={200: serializers.EndpointSerializer, **error_responses(401, 403, 404, 429)},
        summary="Get one endpoint",
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        return Response(selectors.endpoint_data(endpoint))

    @extend_schema(
        operation_id="webhook_update",
        request=serializers.EndpointUpdateSerializer,
        responses={
            200: serializers.EndpointSerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429),
        },
        summary="Change an endpoint's URL, events, description, rate limit or filter",
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        data = _valid(serializers.EndpointUpdateSerializer, json_object(request))
        endpoint = services.endpoint_update(endpoint=endpoint, **data)
        return Response(selectors.endpoint_data(endpoint))

    @extend_schema(
        operation_id="webhook_delete",
        responses={204: None, **error_responses(401, 403, 404, 429)},
        summary="Delete an endpoint and its deliveries",
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        services.endpoint_delete(endpoint=endpoint)
        return Response(status=204)


class WebhookTestView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_test",
        request=serializers.TestRequestSerializer,
        responses={
            202: serializers.DeliverySerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429),
        },
        summary="Send a sample event (X-Sluice-Test: true, _test: true in the body)",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        data = _valid(serializers.TestRequestSerializer, _optional_object(request))
        delivery = services.endpoint_test(endpoint=endpoint, event_type=data.get("event_type"))
        return Response(
            selectors.delivery_data(
                selectors.delivery_get(endpoint=endpoint, delivery_id=delivery.pk)
            ),
            status=202,
        )


class WebhookEnableView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_enable",
        request=serializers.EnableRequestSerializer,
        responses={
            200: serializers.EndpointEnabledSerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429),
        },
        summary="Re-enable a deactivated endpoint; replay: true resends what it missed",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        data = _valid(serializers.EnableRequestSerializer, _optional_object(request))
        replayed = services.endpoint_enable(endpoint=endpoint, replay=data["replay"])
        return Response({**selectors.endpoint_data(endpoint), "replayed": replayed})


class WebhookRotateSecretView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_rotate_secret",
        request=None,
        responses={
            200: serializers.EndpointWithSecretSerializer,
            **error_responses(401, 403, 404, 409, 429),
        },
        summary="New signing secret; the old one keeps signing beside it for 24 h (409 "
        "rotation_in_progress while an earlier rotation's old secret still signs)",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        endpoint = services.endpoint_secret_rotate(endpoint=endpoint)
        return Response(selectors.endpoint_data(endpoint, with_secret=True))


class CallbackSecretRotateView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="callback_secret_rotate",
        tags=["webhooks"],
        request=None,
        responses={
            200: serializers.CallbackSecretSerializer,
            **error_responses(401, 403, 409, 429),
        },
        summary="New callback secret for request webhook_url deliveries (live keys only); the "
        "old one keeps signing beside it for 24 h (409 rotation_in_progress until then)",
    )
    def post(self, request: Request) -> Response:
        # The account has one callback secret and it signs live deliveries too: a sandbox key
        # (kept far more loosely) must not be able to obtain it, or it could forge them.
        if request.auth.sandbox:
            raise Forbidden(
                "The callback secret signs live deliveries too; rotate it with a live key",
                code="live_key_required",
            )
        account = services.callback_secret_rotate(account=request.user)
        return Response(
            {
                "webhook_secret": account.callback_secret,
                "previous_secret_expires_at": iso(account.previous_callback_secret_expires_at),
            }
        )


class WebhookRecoverView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_recover",
        request=serializers.RecoverRequestSerializer,
        responses={
            202: serializers.RecoverSerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429),
        },
        summary="Send again every delivery since a moment that did not get a 2xx (failed, "
        "or skipped while the endpoint was disabled)",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        body = json_object(request)
        unknown = sorted(set(body) - {"since"})
        if unknown:
            raise InvalidRequest(details=dict.fromkeys(unknown, "Unknown field."))
        if not isinstance(body.get("since"), str):
            raise InvalidRequest(details={"since": "Required: an ISO-8601 timestamp."})
        since = selectors.parse_moment(body["since"], "since")
        recovered = services.endpoint_recover(endpoint=endpoint, since=since)
        return Response({"recovered": recovered}, status=202)


class DeliveryListView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_delivery_list",
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter("status", str, enum=[s for s, _ in Delivery.STATUSES]),
        ],
        responses={
            200: serializers.DeliveryListSerializer,
            **error_responses(401, 403, 404, 422, 429),
        },
        summary="An endpoint's deliveries, newest first, with their attempts",
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        cursor, limit = list_params(request)
        queryset = selectors.delivery_list(endpoint=endpoint, filters=request.query_params)
        return Response(
            paginate(queryset, cursor=cursor, limit=limit, serialize=selectors.deliveries_data)
        )


class DeliveryDetailView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_delivery_retrieve",
        responses={200: serializers.DeliverySerializer, **error_responses(401, 403, 404, 429)},
        summary="One delivery with every attempt",
    )
    def get(self, request: Request, endpoint_id: str, delivery_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        delivery = selectors.delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        return Response(selectors.delivery_data(delivery))


class DeliveryRetryView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="webhook_delivery_retry",
        request=None,
        responses={
            202: serializers.DeliverySerializer,
            **error_responses(401, 403, 404, 409, 429),
        },
        summary="Send a delivery again now",
    )
    def post(self, request: Request, endpoint_id: str, delivery_id: str) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        delivery = selectors.delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        services.delivery_retry(delivery=delivery)
        delivery = selectors.delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        return Response(selectors.delivery_data(delivery), status=202)


class EventListView(APIView):
    required_scope = "webhooks"

    @extend_schema(
        operation_id="event_list",
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter("type", str, enum=Event.TYPES),
            OpenApiParameter("since", str, description="ISO-8601; events at or after it"),
        ],
        responses={200: serializers.EventListSerializer, **error_responses(401, 403, 422, 429)},
        summary="Poll stored events, newest first",
    )
    def get(self, request: Request) -> Response:
        cursor, limit = list_params(request)
        queryset = selectors.event_list(
            account=request.user, sandbox=request.auth.sandbox, filters=request.query_params
        )
        return Response(
            paginate(queryset, cursor=cursor, limit=limit, serialize=selectors.events_data)
        )
