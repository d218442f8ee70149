from django.urls import path

from . import views

urlpatterns = [
    path("credits", views.CreditsView.as_view(), name="credits"),
]
