from django.urls import path

from config.views import placeholder

app_name = "ledger"

urlpatterns = [
    path("", placeholder, {"title": "Overview"}, name="overview"),
    path("usage/", placeholder, {"title": "Usage"}, name="usage"),
    path("ledger/", placeholder, {"title": "Ledger"}, name="ledger"),
    path("topup/", placeholder, {"title": "Top up"}, name="topup"),
]
