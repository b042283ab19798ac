""" "What would this cost?": a traffic shape priced on every route of a model.

For each enabled route of the model (enabled upstream), in that route's wallet currency and
after the organization's price multiplier:

    per_request = cost of one request with the given input, output and cached-input tokens
                  (the same `cost_compute` that prices real requests)
    per_day     = per_request x requests per day
    per_month   = per_day x 30

Cheapest first: by face value, or, when the operator sets `DISPLAY_FX_USD_CNY`, with RMB
amounts converted at that rate for the ordering only (amounts stay in their currency). The
route tokenforge would try first for the organization (route order, the first usable one) is
marked `first_choice`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from accounts.models import Organization
from ledger.money import to_money
from routing.models import Route
from routing.pricing import Prices, cost_compute

DAYS_PER_MONTH = 30


@dataclass
class EstimateOption:
    upstream: str
    upstream_model: str
    wallet: str
    per_request: Decimal
    per_day: Decimal
    per_month: Decimal
    first_choice: bool


def _prices(route: Route) -> Prices:
    """Every part, unset ones by the provider's rule, as real requests are priced."""
    from routing.selectors import route_prices

    return route_prices(route, provider=route.upstream.provider)


def estimate_routes(
    *,
    org: Organization,
    model: str,
    requests_per_day: int,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
) -> list[EstimateOption] | None:
    """Every route's cost for this traffic, cheapest first; None when the model is unknown."""
    routes = list(
        Route.objects.filter(
            model__name=model, model__enabled=True, enabled=True, upstream__enabled=True
        )
        .select_related("upstream")
        .order_by("position", "id")
    )
    if not routes:
        return None
    options = []
    for index, route in enumerate(routes):
        per_request = cost_compute(
            prices=_prices(route),
            multiplier=org.price_multiplier,
            prompt_tokens=input_tokens,
            completion_tokens=output_tokens,
            cached_tokens=cached_input_tokens,
        )
        per_day = to_money(per_request * requests_per_day)
        options.append(
            EstimateOption(
                upstream=route.upstream.name,
                upstream_model=route.upstream_model,
                wallet=route.upstream.wallet,
                per_request=per_request,
                per_day=per_day,
                per_month=to_money(per_day * DAYS_PER_MONTH),
                first_choice=index == 0,
            )
        )
    fx = settings.DISPLAY_FX_USD_CNY

    def order(option: EstimateOption):
        value = option.per_request
        if fx and option.wallet == "RMB":
            value = value / fx  # compared in USD only when the operator set a rate
        return (value, not option.first_choice)

    return sorted(options, key=order)
