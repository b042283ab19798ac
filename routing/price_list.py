"""Prices before spending: each model, its routes' prices per wallet after the organization's
multiplier (the dashboard's Models page and the `pricing` object on GET /v1/models)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from ledger.money import QUANTUM, WALLET_ISO
from routing.models import Model, Route


def _per_million(value: Decimal | None, multiplier: Decimal) -> str | None:
    if value is None:
        return None
    return format((value * multiplier).quantize(QUANTUM).normalize(), "f")


def model_catalog(
    *,
    multiplier: Decimal,
    models: Iterable[Model] | None = None,
    allowed_wallets: Iterable[str] = (),
) -> list[dict]:
    """[{name, context_window, max_output_tokens, pricing: {WALLET: {...}}, routes: [...]}].

    `pricing` per wallet is that wallet's first route (routes are tried in order), per 1M
    tokens as decimal strings in the wallet's currency; `routes` lists every enabled route.
    """
    wallets = set(allowed_wallets)
    if models is None:
        models = Model.objects.filter(enabled=True).order_by("name")
    models = list(models)
    routes = (
        Route.objects.filter(
            model__in=models, enabled=True, upstream__enabled=True, model__enabled=True
        )
        .select_related("upstream")
        .order_by("model_id", "position", "id")
    )
    by_model: dict[int, list[Route]] = {}
    for route in routes:
        if wallets and route.upstream.wallet not in wallets:
            continue
        by_model.setdefault(route.model_id, []).append(route)
    catalog = []
    for model in models:
        pricing: dict[str, dict] = {}
        rows = []
        for route in by_model.get(model.pk, []):
            wallet = route.upstream.wallet
            prices = {
                "currency": WALLET_ISO.get(wallet, "").upper(),
                "unit": "per 1M tokens",
                "input": _per_million(route.price_input, multiplier),
                "output": _per_million(route.price_output, multiplier),
                "cached_input": _per_million(
                    route.price_cached_input
                    if route.price_cached_input is not None
                    else route.price_input,
                    multiplier,
                ),
            }
            pricing.setdefault(wallet, prices)
            rows.append({"wallet": wallet, "position": route.position, **prices})
        if not rows:
            continue
        catalog.append(
            {
                "name": model.name,
                # The model's own, else the largest its routes' upstreams take (price catalog).
                "context_window": model.context_window
                or max(
                    (r.context_window for r in by_model.get(model.pk, []) if r.context_window),
                    default=None,
                ),
                "max_output_tokens": model.max_output_tokens,
                "pricing": pricing,
                "routes": rows,
            }
        )
    return catalog
