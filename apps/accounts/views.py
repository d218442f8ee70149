"""Thin API views for the account itself."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import error_responses

from . import selectors


class CreditsSerializer(serializers.Serializer):
    credits = serializers.IntegerField()
    plan = serializers.CharField()
    daily_requests_used = serializers.IntegerField()
    daily_limit = serializers.IntegerField(allow_null=True)


class CreditsView(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="credits_retrieve",
        responses={200: CreditsSerializer, **error_responses(401, 403, 429)},
        summary="Credit balance and today's usage",
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.credits_data(account=request.user))
