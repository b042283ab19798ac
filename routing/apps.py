from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"

    def ready(self) -> None:
        from projects.services import KEY_REVOKED_HOOKS
        from routing.auth import on_key_revoked

        if on_key_revoked not in KEY_REVOKED_HOOKS:
            KEY_REVOKED_HOOKS.append(on_key_revoked)

        from projects.forms import MODEL_NAMES_PROVIDERS
        from routing.selectors import model_names_public

        if model_names_public not in MODEL_NAMES_PROVIDERS:
            MODEL_NAMES_PROVIDERS.append(model_names_public)
