"""The price catalog: LiteLLM's `model_prices_and_context_window.json` format (USD per token).

Read two ways: `catalog_entry` finds a model's entry (the snapshot under routing/data, loaded
once) so unset price parts can follow the provider's published list (routing/pricing.py), and
`import_prices` (routing/services_catalog.py) proposes whole route prices from any such file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from django.conf import settings

SNAPSHOT = Path(__file__).resolve().parent / "data" / "model_prices_and_context_window.json"
PER_MILLION = Decimal(1_000_000)

# Catalog key (USD per token) -> the route price part it gives (per 1M tokens).
PART_KEYS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cached_input": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
    "reasoning": "output_cost_per_reasoning_token",
    "input_audio": "input_cost_per_audio_token",
    "output_audio": "output_cost_per_audio_token",
}
PROVIDER_PREFIXES = ("openai/", "anthropic/", "gemini/", "google/", "models/")


def catalog_load(path: str | Path) -> dict[str, dict]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh, parse_float=Decimal)  # never float: prices stay exact
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON object of models is expected")
    return {k: v for k, v in data.items() if isinstance(v, dict) and k != "sample_spec"}


@lru_cache(maxsize=1)
def _snapshot() -> dict[str, dict]:
    path = getattr(settings, "PRICE_CATALOG_PATH", "") or SNAPSHOT
    try:
        return catalog_load(path)
    except (OSError, ValueError):
        return {}


def catalog_lookup(catalog: dict[str, dict], *, model: str, provider: str = "") -> dict | None:
    """The entry for an upstream model name: exactly, with the provider's prefix, or without a
    relay's vendor prefix (`openai/gpt-4o` on an OpenAI-compatible relay)."""
    names = [model]
    for prefix in PROVIDER_PREFIXES:
        if model.startswith(prefix):
            names.append(model[len(prefix) :])
    candidates = []
    for name in names:
        candidates.append(name)
        if provider == "gemini" or name.startswith("gemini"):
            candidates.append("gemini/" + name)
    for name in candidates:
        entry = catalog.get(name)
        if entry is not None and entry.get("input_cost_per_token") is not None:
            return entry
    return None


def catalog_entry(*, model: str, provider: str = "") -> dict | None:
    return catalog_lookup(_snapshot(), model=model, provider=provider)


def per_million(value) -> Decimal | None:
    """A catalog price (USD per token) per 1M tokens, exact."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return (Decimal(str(value)) * PER_MILLION).normalize()
    except (InvalidOperation, ValueError):
        return None


def entry_parts(entry: dict) -> dict[str, Decimal]:
    """The price parts (per 1M) an entry gives."""
    out = {}
    for part, key in PART_KEYS.items():
        value = per_million(entry.get(key))
        if value is not None:
            out[part] = value
    return out


def entry_tiers(entry: dict) -> list[dict]:
    """Long-context prices (`input_cost_per_token_above_200k_tokens` ...) as route tiers."""
    thresholds: dict[int, dict] = {}
    for key, value in entry.items():
        marker = "_above_"
        if marker not in key or not key.endswith("k_tokens"):
            continue
        base, _, rest = key.partition(marker)
        try:
            above = int(rest[: -len("k_tokens")]) * 1000
        except ValueError:
            continue
        part = next((p for p, k in PART_KEYS.items() if k == base), None)
        price = per_million(value)
        if part is None or price is None:
            continue
        thresholds.setdefault(above, {"above_input_tokens": above})[part] = price
    return [thresholds[k] for k in sorted(thresholds)]


def entry_ratio(entry: dict | None, part: str, *, of: str) -> Decimal | None:
    """How a part's price relates to `of` (input or output) in the catalog, e.g. gpt-4o's
    cache read is 0.5 × its input: applied to a route's own input price (a relay's discount
    and the RMB wallet keep their proportions)."""
    if entry is None:
        return None
    parts = entry_parts(entry)
    base = parts.get(of)
    if part not in parts or not base:
        return None
    return (parts[part] / base).normalize()


# --- proposals for `import_prices` ---------------------------------------------------------------

PRICE_PARTS = tuple(PART_KEYS)  # input, output, cached_input, cache_write, ... output_audio


@dataclass(frozen=True)
class PriceChange:
    """One line of the diff: a route's (or model's) field, what it is, what the catalog says."""

    route_id: int | None
    model_id: int | None
    label: str  # "public-model → upstream/upstream-model"
    part: str  # a price part, "tiers", "context_window" or "max_output_tokens"
    old: object
    new: object
    action: str  # "set" (unset before), "update" (the catalog's own earlier value), "kept", "force"

    @property
    def writes(self) -> bool:
        return self.action in ("set", "update", "force")

    def line(self) -> str:
        def show(value) -> str:
            if value is None:
                return "unset"
            if isinstance(value, Decimal):
                return format(value.normalize(), "f")
            return json.dumps(value, default=str) if isinstance(value, list) else str(value)

        note = {
            "set": "",
            "update": " (catalog)",
            "force": " (hand-set, overwritten: --force)",
            "kept": " (hand-set: kept; --force overwrites)",
        }[self.action]
        return f"{self.label}: {self.part} {show(self.old)} -> {show(self.new)}{note}"


def prices_diff(*, catalog: dict[str, dict], force: bool = False) -> list[PriceChange]:
    """What the catalog would change in the routing table. A route whose hand-set input or
    output price differs from the list (a relay selling at a discount, the RMB wallet) keeps
    its own prices: only its sizes are proposed, and its unset parts go on following the
    provider's rule in proportion to its own price. `force` overwrites hand-set values."""
    from routing.models import Model, Route
    from routing.services import tiers_validate

    changes: list[PriceChange] = []
    max_output: dict[int, tuple[Model, int]] = {}
    routes = (
        Route.objects.filter(enabled=True)
        .select_related("model", "upstream")
        .order_by("model__name", "position", "id")
    )
    for route in routes:
        entry = catalog_lookup(
            catalog, model=route.upstream_model, provider=route.upstream.provider
        )
        if entry is None:
            continue
        label = f"{route.model.name} → {route.upstream.name}/{route.upstream_model}"
        marked = set(route.price_catalog_parts or [])
        proposed = entry_parts(entry)

        def change(part: str, old, new, *, hand_set: bool, label=label, route=route) -> None:
            if new is None or old == new:
                return
            if old is None or old == []:
                action = "set"
            elif not hand_set:
                action = "update"
            else:
                action = "force" if force else "kept"
            changes.append(PriceChange(route.pk, None, label, part, old, new, action))

        own_price = route.upstream.wallet == "CREDIT" and all(
            getattr(route, f"price_{part}") == proposed.get(part) or part in marked
            for part in ("input", "output")
        )
        if own_price or force:
            for part in PRICE_PARTS:
                old = getattr(route, f"price_{part}")
                change(
                    part,
                    None if old is None else old.normalize(),
                    proposed.get(part),
                    hand_set=part not in marked,
                )
            tiers = tiers_validate(entry_tiers(entry), label)  # as the routing file stores them
            change(
                "tiers",
                route.price_tiers or [],
                tiers or None,
                hand_set="tiers" not in marked,
            )
        window = entry.get("max_input_tokens")
        if isinstance(window, int):
            change(
                "context_window",
                route.context_window,
                window,
                hand_set="context_window" not in marked,
            )
        out = entry.get("max_output_tokens")
        if isinstance(out, int) and out > max_output.get(route.model_id, (None, 0))[1]:
            max_output[route.model_id] = (route.model, out)
    for model, out in max_output.values():
        if model.max_output_tokens != out:
            action = "set" if model.max_output_tokens is None else ("force" if force else "kept")
            changes.append(
                PriceChange(
                    None, model.pk, model.name, "max_output_tokens", model.max_output_tokens, out,
                    action,
                )
            )  # fmt: skip
    return changes
