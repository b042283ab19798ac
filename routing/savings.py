"""What a request would have cost on the model's first official route ("saved by routing").

The baseline is the model's first route paid from the Credit wallet (the official upstream),
at its prices at the time of the request, with the request's own token counts and the
organization's multiplier. It is recorded on the usage record beside the real cost, in the
baseline's currency (CREDIT): savings are never converted silently between currencies.
"""

from __future__ import annotations

from decimal import Decimal

from routing.pricing import usage_cost
from routing.providers.base import Usage
from routing.selectors import RouteEntry

BASELINE_WALLET = "CREDIT"


def baseline_route(routes: tuple[RouteEntry, ...]) -> RouteEntry | None:
    return next((r for r in routes if r.wallet == BASELINE_WALLET), None)


def baseline_cost(
    *, routes: tuple[RouteEntry, ...], usage: Usage, multiplier: Decimal
) -> tuple[Decimal | None, str]:
    """(cost on the first official route, its wallet), or (None, "") when the model has none."""
    route = baseline_route(routes)
    if route is None:
        return None, ""
    # every token class at its own part, exactly as the request itself was priced
    cost = usage_cost(prices=route.prices, multiplier=multiplier, usage=usage)
    return cost, route.wallet
