"""Navigation links that exist only sometimes: the Researcher page (built by its own app) and
the Models page, and the audit log for the members allowed to open it."""

from __future__ import annotations

from django.urls import NoReverseMatch, resolve, reverse


def _page_url(name: str) -> str | None:
    """The URL of a real page by name, or None (missing, or still the placeholder view)."""
    try:
        url = reverse(name)
    except NoReverseMatch:
        return None
    try:
        view = resolve(url).func
    except Exception:  # noqa: BLE001 - a link we cannot check is a link we do not show
        return None
    if getattr(view, "__name__", "") == "placeholder":
        return None
    return url


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "nav_researcher_url": _page_url("researcher:runs"),
        "nav_models_url": _page_url("models_page"),
        "nav_can_see_audit_log": bool(membership and membership.has_role("admin")),
    }
