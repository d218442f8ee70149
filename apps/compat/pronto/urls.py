"""Pronto's paths under /compat/pronto/api/v2/ (mounted while COMPAT_PRONTO_ENABLED)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("contacts/single_enrich", views.SingleEnrichView.as_view(), name="pronto-single-enrich"),
    path("contacts/bulk_enrich", views.BulkEnrichView.as_view(), name="pronto-bulk-enrich"),
    path(
        "contacts/<str:enrichment_id>",
        views.ContactDetailView.as_view(),
        name="pronto-contact-detail",
    ),
]
