from django.urls import path

from config.views import placeholder

urlpatterns = [
    path("", placeholder, {"title": "Overview"}, name="overview"),
    path("usage/", placeholder, {"title": "Usage"}, name="usage"),
    path("ledger/", placeholder, {"title": "Ledger"}, name="ledger"),
]
