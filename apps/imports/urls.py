from django.urls import path

from . import views

urlpatterns = [
    path("imports", views.ImportListCreateView.as_view(), name="import-list"),
    path("imports/<str:import_id>", views.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<str:import_id>/errors", views.ImportErrorsView.as_view(), name="import-errors"),
    path("exports", views.ExportListCreateView.as_view(), name="export-list"),
    path("exports/<str:export_id>", views.ExportDetailView.as_view(), name="export-detail"),
    path(
        "exports/<str:export_id>/download",
        views.ExportDownloadView.as_view(),
        name="export-download",
    ),
]
