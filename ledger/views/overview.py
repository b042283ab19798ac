"""The overview page: wallets, spend, API versus Researcher, top spenders, alerts, forecast."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.conf import settings
from django.shortcuts import render

from accounts.decorators import org_required
from ledger.periods import period_start
from ledger.selectors_dashboard import overview_get
from ledger.selectors_forecast import forecast_get
from ledger.selectors_savings import savings_get, savings_total


@org_required
def overview(request):
    forecast = forecast_get(org=request.org)
    month = datetime.combine(period_start("month", forecast.now), time.min, tzinfo=UTC)
    savings = savings_get(org=request.org, by="month", start=month)
    return render(
        request,
        "ledger/overview.html",
        {
            "title": "Overview",
            "overview": overview_get(org=request.org),
            "forecast": forecast,
            "savings": savings_total(savings),
            "fx": settings.DISPLAY_FX_USD_CNY,
        },
    )
