"""Webhook endpoint, delivery, event and callback-secret URLs under /api/v1 (no trailing slash)."""

from django.urls import path

from . import views

_ENDPOINT = "webhooks/<str:endpoint_id>"
_DELIVERY = f"{_ENDPOINT}/deliveries/<str:delivery_id>"

urlpatterns = [
    path("webhooks", views.WebhookListView.as_view(), name="webhook-list"),
    path(_ENDPOINT, views.WebhookDetailView.as_view(), name="webhook-detail"),
    path(f"{_ENDPOINT}/test", views.WebhookTestView.as_view(), name="webhook-test"),
    path(f"{_ENDPOINT}/enable", views.WebhookEnableView.as_view(), name="webhook-enable"),
    path(
        f"{_ENDPOINT}/rotate-secret",
        views.WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path(f"{_ENDPOINT}/recover", views.WebhookRecoverView.as_view(), name="webhook-recover"),
    path(f"{_ENDPOINT}/deliveries", views.DeliveryListView.as_view(), name="webhook-deliveries"),
    path(_DELIVERY, views.DeliveryDetailView.as_view(), name="webhook-delivery"),
    path(f"{_DELIVERY}/retry", views.DeliveryRetryView.as_view(), name="webhook-delivery-retry"),
    path("events", views.EventListView.as_view(), name="event-list"),
    path(
        "callback-secret/rotate",
        views.CallbackSecretRotateView.as_view(),
        name="callback-secret-rotate",
    ),
]
