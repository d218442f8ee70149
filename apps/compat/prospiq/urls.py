"""prospiq's paths, under /compat/prospiq/api/v1/ (apps/compat/urls.py); no trailing slash."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("enrich", views.EnrichView.as_view(), name="prospiq-enrich"),
    path("enrich/bulk", views.BulkEnrichView.as_view(), name="prospiq-enrich-bulk"),
    path("credits", views.CreditsView.as_view(), name="prospiq-credits"),
    path("subscribe", views.SubscribeView.as_view(), name="prospiq-subscribe"),
    path("webhooks", views.WebhookListView.as_view(), name="prospiq-webhooks"),
    path("webhooks/test", views.WebhookTestView.as_view(), name="prospiq-webhooks-test"),
    path("webhooks/poll/<str:event>", views.PollView.as_view(), name="prospiq-webhooks-poll"),
]
