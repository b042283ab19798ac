"""django-axes lockout answer: the HTML page for the site, DRF-style JSON for the API
(`POST /api/auth/token/` is a log-in too, and API clients parse JSON)."""

from __future__ import annotations

from axes.helpers import get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def lockout_response(request: HttpRequest, credentials: dict | None = None) -> HttpResponse:
    cool_off = get_cool_off(request)
    status = settings.AXES_HTTP_RESPONSE_CODE
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"detail": "Too many failed log-in attempts; try again later."}, status=status
        )
        if cool_off:
            response["Retry-After"] = str(int(cool_off.total_seconds()))
        return response
    context = {
        "failure_limit": get_failure_limit(request, credentials),
        "cooloff_timedelta": cool_off,
    }
    return render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=status)
