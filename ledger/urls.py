"""Dashboard pages of the ledger app: overview, usage, ledger and balance (urls_dashboard),
top-up (urls_topup)."""

from django.urls import include, path

app_name = "ledger"

urlpatterns = [
    path("", include("ledger.urls_dashboard")),
    path("", include("ledger.urls_topup")),
]
