"""Permission classes: an authenticated key, and the scope each view requires."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from .models import ApiKey

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class HasApiAccess(BasePermission):
    """A valid key is present and carries the view's ``required_scope`` (if it names one)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated("Missing API key", code="missing_api_key")
        scope = getattr(view, "required_scope", None)
        if scope and not key.has_scope(scope):
            raise exceptions.PermissionDenied(
                f"This key lacks the '{scope}' scope", code="insufficient_scope"
            )
        return True
