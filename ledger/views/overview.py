"""The overview page: wallets, spend, API versus Researcher, top spenders, alerts, forecast."""

from __future__ import annotations

from django.shortcuts import render

from accounts.decorators import org_required
from ledger.selectors_dashboard import overview_get


@org_required
def overview(request):
    return render(
        request,
        "ledger/overview.html",
        {"title": "Overview", "overview": overview_get(org=request.org)},
    )
