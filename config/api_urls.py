"""The management REST API: each app contributes its routes from `<app>/api_urls.py`."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api_urls")),
    path("", include("projects.api_urls")),
    path("", include("ledger.api_urls")),
    path("", include("routing.api_urls")),
    path("", include("researcher.api_urls")),
]
