from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """200 when the database and the cache answer, 503 otherwise."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means "down"
        checks["database"] = "down"
    try:
        cache.set("healthz", "1", 5)
        checks["cache"] = "ok" if cache.get("healthz") == "1" else "down"
    except Exception:  # noqa: BLE001
        checks["cache"] = "down"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503
    )


def placeholder(request, title: str):
    """Temporary page for a section that an app has not built yet."""
    from django.shortcuts import render

    return render(request, "placeholder.html", {"title": title})
