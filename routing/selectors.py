"""Reads of the routing table for the hot path, cached in-process for a few seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from routing.models import Model, Route
from routing.pricing import PART_FIELDS, Prices, prices_build
from routing.providers.base import UpstreamTarget


@dataclass(frozen=True, slots=True)
class RouteEntry:
    route_id: int
    upstream_id: int
    upstream_model: str
    position: int
    weight: int
    wallet: str
    prices: Prices
    target: UpstreamTarget  # carries the decrypted secret: never log it
    context_window: int | None = None  # the longest prompt the upstream takes (price catalog)

    @property
    def label(self) -> str:
        return f"{self.target.name}/{self.upstream_model}"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    model_id: int
    name: str
    max_output_tokens: int | None
    routes: tuple[RouteEntry, ...]  # enabled routes of enabled upstreams, in position order


_table: dict[str, tuple[float, ModelEntry | None]] = {}


def route_prices(route: Route, *, provider: str) -> Prices:
    """A route's full price: its own parts, the provider's rule for the rest."""
    return prices_build(
        provider=provider,
        upstream_model=route.upstream_model,
        input=route.price_input,
        output=route.price_output,
        parts={part: getattr(route, field) for part, field in PART_FIELDS.items()},
        tiers=route.price_tiers if isinstance(route.price_tiers, list) else [],
    )


def _model_load(name: str) -> ModelEntry | None:
    model = Model.objects.filter(name=name, enabled=True).first()
    if model is None:
        return None
    routes = (
        Route.objects.filter(model=model, enabled=True, upstream__enabled=True)
        .select_related("upstream")
        .order_by("position", "id")
    )
    entries = []
    for route in routes:
        up = route.upstream
        entries.append(
            RouteEntry(
                route_id=route.pk,
                upstream_id=up.pk,
                upstream_model=route.upstream_model,
                position=route.position,
                weight=route.weight,
                wallet=up.wallet,
                prices=route_prices(route, provider=up.provider),
                target=UpstreamTarget(
                    name=up.name,
                    provider=up.provider,
                    base_url=up.base_url,
                    api_key=up.api_key,
                    timeout=float(up.timeout),
                    responses=up.responses,
                ),
                context_window=route.context_window,
            )
        )
    return ModelEntry(
        model_id=model.pk,
        name=model.name,
        max_output_tokens=model.max_output_tokens,
        routes=tuple(entries),
    )


MAX_NEGATIVE_TABLE = 10_000


def model_entry_get(*, name: str) -> ModelEntry | None:
    """The public model with its usable routes (sync; call through sync_to_async)."""
    now = time.monotonic()
    cached = _table.get(name)
    if cached is not None and cached[0] > now:
        return cached[1]
    if "\x00" in name:  # PostgreSQL text cannot hold NUL: no such model, not a 500 (issue 8)
        return None
    entry = _model_load(name)
    # Unknown names are client-chosen: cache them only while the table is small (memory).
    if entry is not None or len(_table) < MAX_NEGATIVE_TABLE:
        _table[name] = (now + settings.ROUTING_TABLE_CACHE_SECONDS, entry)
    return entry


def model_entry_cached(*, name: str) -> tuple[bool, ModelEntry | None]:
    """(hit, entry) without touching the database, so the hot path can skip a thread hop."""
    cached = _table.get(name)
    if cached is not None and cached[0] > time.monotonic():
        return True, cached[1]
    return False, None


def routing_cache_clear() -> None:
    _table.clear()


def models_for_key(
    *, allowed_models: tuple[str, ...], allowed_wallets: tuple[str, ...]
) -> list[Model]:
    """Enabled models with at least one usable route the key may pay for."""
    routes = Route.objects.filter(enabled=True, upstream__enabled=True, model__enabled=True)
    if allowed_wallets:
        routes = routes.filter(upstream__wallet__in=allowed_wallets)
    models = Model.objects.filter(pk__in=routes.values("model_id")).order_by("name")
    if allowed_models:
        models = models.filter(name__in=allowed_models)
    return list(models)


def model_names_public() -> set[str]:
    """Every public model name (the key form's allow-list is checked against it)."""
    return set(Model.objects.values_list("name", flat=True))
