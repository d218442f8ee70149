from django.urls import path

from . import views

urlpatterns = [
    path("enrich", views.EnrichView.as_view(), name="enrich"),
    path("enrich/sync", views.EnrichSyncView.as_view(), name="enrich-sync"),
    path("enrich/bulk", views.BulkEnrichView.as_view(), name="enrich-bulk"),
    path("contacts", views.ContactListView.as_view(), name="contact-list"),
    path("contacts/<str:enrichment_id>", views.ContactDetailView.as_view(), name="contact-detail"),
    path("bulk/<str:bulk_id>", views.BulkDetailView.as_view(), name="bulk-detail"),
    path("lists", views.ListListView.as_view(), name="list-list"),
    path("lists/<str:list_id>", views.ListDetailView.as_view(), name="list-detail"),
    path("lists/<str:list_id>/contacts", views.ListContactsView.as_view(), name="list-contacts"),
    path(
        "lists/<str:list_id>/contacts/<str:enrichment_id>",
        views.ListContactDetailView.as_view(),
        name="list-contact-detail",
    ),
]
