from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"

    def ready(self) -> None:
        from projects.services import KEY_REVOKED_HOOKS
        from routing.auth import on_key_revoked

        if on_key_revoked not in KEY_REVOKED_HOOKS:
            KEY_REVOKED_HOOKS.append(on_key_revoked)
