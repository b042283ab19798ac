from django.urls import path

from ledger.views import budgets, ledger, overview, usage

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("usage/", usage.usage, name="usage"),
    path("ledger/", ledger.ledger, name="ledger"),
    path("ledger/export.csv", ledger.ledger_csv, name="ledger_csv"),
    path("ledger/requests/<str:request_id>/", ledger.request_detail, name="request_detail"),
    path("ledger/transactions/<int:pk>/", ledger.transaction_detail, name="transaction_detail"),
    path("ledger/balance/", ledger.balance_drop_view, name="balance_drop"),
    path("projects/<int:pk>/", budgets.project_detail, name="project_detail"),
    path("keys/<int:pk>/", budgets.key_detail, name="key_detail"),
    path("budgets/<str:scope>/<int:pk>/", budgets.budget_save, name="budget_save"),
    path("budgets/<int:budget_id>/remove/", budgets.budget_delete, name="budget_remove"),
]
