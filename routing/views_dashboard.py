"""The dashboard's Models page: prices before spending, per wallet, after the org's multiplier."""

from __future__ import annotations

from django.shortcuts import render

from accounts.decorators import org_required
from routing.price_list import model_catalog


@org_required
def models_page(request):
    multiplier = request.org.price_multiplier
    return render(
        request,
        "routing/models.html",
        {
            "title": "Models",
            "catalog": model_catalog(multiplier=multiplier),
            "multiplier": multiplier,
        },
    )
