"""The dialects' URL prefixes; each is mounted only while its setting is on."""

from __future__ import annotations

from django.conf import settings
from django.urls import include, path

urlpatterns = []
if settings.COMPAT_PRONTO_ENABLED:
    urlpatterns.append(path("pronto/api/v2/", include("apps.compat.pronto.urls")))
if settings.COMPAT_PROSPIQ_ENABLED:
    urlpatterns.append(path("prospiq/api/v1/", include("apps.compat.prospiq.urls")))
