"""Top-level URLs: the versioned API, admin, health, schema and docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from apps.core import metrics as core_metrics
from apps.core import views as core_views

api_v1 = [
    path("", include("apps.accounts.urls")),
    path("", include("apps.enrichment.urls")),
    path("", include("apps.webhooks.urls")),
    path("", include("apps.imports.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("compat/", include("apps.compat.urls")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(
            url_name="schema", authentication_classes=[], permission_classes=[]
        ),
        name="docs",
    ),
    # Swagger UI and ReDoc load their assets from this server (drf-spectacular-sidecar).
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(
            url_name="schema",
            template_name="core/redoc.html",
            authentication_classes=[],
            permission_classes=[],
        ),
        name="redoc",
    ),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_metrics.metrics, name="metrics"),
    # Before admin.site.urls, whose catch-all would answer /admin/dashboard/ with a 404.
    path("admin/dashboard/", include("apps.ops.urls")),
    path("admin/", admin.site.urls),
]

# Errors Django raises outside REST framework's views (a Host outside ALLOWED_HOSTS, a
# PermissionDenied) get the same JSON envelope as the API's own.
handler400 = "apps.core.errors.json_400"
handler403 = "apps.core.errors.json_403"
handler404 = "apps.core.errors.json_404"
handler500 = "apps.core.errors.json_500"
