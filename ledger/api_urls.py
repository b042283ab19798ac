from django.urls import path
from rest_framework.routers import SimpleRouter

from ledger import api

router = SimpleRouter()
router.register("wallets", api.WalletViewSet, basename="api-wallets")
router.register("budgets/status", api.BudgetStatusViewSet, basename="api-budget-status")
router.register("budgets", api.BudgetViewSet, basename="api-budgets")
router.register("usage/records", api.UsageRecordViewSet, basename="api-usage-records")
router.register("usage", api.UsageViewSet, basename="api-usage")
router.register("transactions", api.TransactionViewSet, basename="api-transactions")

urlpatterns = [
    path(
        "projects/<int:pk>/forecast/",
        api.ProjectForecastView.as_view(),
        name="api-project-forecast",
    ),
    path("keys/<int:pk>/forecast/", api.KeyForecastView.as_view(), name="api-key-forecast"),
    *router.urls,
]
