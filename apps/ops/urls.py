"""URLs of the ops pages that live inside the admin (mounted at /admin/dashboard/)."""

from django.contrib import admin
from django.urls import path

from . import views

app_name = "ops"

urlpatterns = [
    path("", admin.site.admin_view(views.dashboard), name="dashboard"),
]
