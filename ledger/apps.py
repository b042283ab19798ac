from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"

    def ready(self) -> None:
        from ledger.services.budgets import key_budget_set_on_create
        from projects.services import KEY_BUDGET_SETTERS

        if key_budget_set_on_create not in KEY_BUDGET_SETTERS:
            KEY_BUDGET_SETTERS.append(key_budget_set_on_create)
