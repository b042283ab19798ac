"""Writes to the routing table: the declarative routing file, and enabling/disabling upstreams."""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.redaction import redact_secrets
from ledger.money import Currency, to_money
from routing.models import Model, ProviderKind, Route, Upstream
from routing.selectors import routing_cache_clear


class RoutingFileError(ValueError):
    """The routing file is invalid; the message says where. Nothing was applied."""


def _price(value: Any, where: str) -> Decimal:
    if isinstance(value, float):
        raise RoutingFileError(f'{where}: write prices as strings ("1.05"), not floats')
    try:
        amount = to_money(str(value))
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise RoutingFileError(f"{where}: {value!r} is not a decimal price") from exc
    if amount < 0:
        raise RoutingFileError(f"{where}: a price cannot be negative")
    return amount


PRICE_KEYS = (
    "input",
    "output",
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "reasoning",
    "input_audio",
    "output_audio",
    "per_request",
)
TIER_KEYS = tuple(k for k in PRICE_KEYS if k != "per_request")


def _price_parts(price: Any, where: str) -> dict:
    """A route's `price` mapping -> Route field values (unset parts None; tiers as strings)."""
    if not isinstance(price, dict) or "input" not in price or "output" not in price:
        raise RoutingFileError(f"{where}: price needs `input` and `output`")
    unknown = set(price) - {*PRICE_KEYS, "tiers"}
    if unknown:
        raise RoutingFileError(
            f"{where}: unknown price part(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(PRICE_KEYS)}, tiers"
        )
    fields = {
        f"price_{key}": (
            _price(price[key], f"{where} price.{key}") if price.get(key) is not None else None
        )
        for key in PRICE_KEYS
    }
    fields["price_tiers"] = tiers_validate(price.get("tiers") or [], f"{where} price.tiers")
    return fields


def tiers_validate(tiers: Any, where: str) -> list[dict]:
    """Tiers as stored: sorted by threshold, each price part a plain decimal string."""
    if not isinstance(tiers, list):
        raise RoutingFileError(f"{where} must be a list")
    out, seen = [], set()
    for k, tier in enumerate(tiers):
        twhere = f"{where}[{k}]"
        above = tier.get("above_input_tokens") if isinstance(tier, dict) else None
        if isinstance(above, bool) or not isinstance(above, int) or above < 1:
            raise RoutingFileError(f"{twhere}: above_input_tokens must be a positive integer")
        if above in seen:
            raise RoutingFileError(f"{twhere}: two tiers above {above} input tokens")
        seen.add(above)
        unknown = set(tier) - {*TIER_KEYS, "above_input_tokens"}
        if unknown:
            raise RoutingFileError(f"{twhere}: unknown price part(s) {', '.join(sorted(unknown))}")
        entry: dict = {"above_input_tokens": above}
        for key in TIER_KEYS:
            if tier.get(key) is not None:
                entry[key] = _plain(_price(tier[key], f"{twhere}.{key}"))
        out.append(entry)
    return sorted(out, key=lambda t: t["above_input_tokens"])


def _validate(data: Any, env: dict[str, str]) -> tuple[list[dict], list[dict]]:
    if not isinstance(data, dict):
        raise RoutingFileError("the routing file must be a mapping with `upstreams` and `models`")
    upstreams_in = data.get("upstreams") or []
    models_in = data.get("models") or []
    if not isinstance(upstreams_in, list) or not isinstance(models_in, list):
        raise RoutingFileError("`upstreams` and `models` must be lists")
    upstreams, names = [], set()
    for i, item in enumerate(upstreams_in):
        where = f"upstreams[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise RoutingFileError(f"{where}: needs a `name`")
        where = f"upstream {item['name']!r}"
        if item["name"] in names:
            raise RoutingFileError(f"{where}: named twice")
        names.add(item["name"])
        provider = item.get("provider")
        if provider not in ProviderKind.values:
            raise RoutingFileError(
                f"{where}: provider must be one of {', '.join(ProviderKind.values)}"
            )
        wallet = item.get("wallet", Currency.CREDIT)
        if wallet not in Currency.values:
            raise RoutingFileError(f"{where}: wallet must be CREDIT or RMB")
        timeout = item.get("timeout", 60)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 3600:
            raise RoutingFileError(f"{where}: timeout must be whole seconds between 1 and 3600")
        responses = item.get("responses", False)
        if not isinstance(responses, bool):
            raise RoutingFileError(f"{where}: responses must be true or false")
        if responses and provider != ProviderKind.OPENAI:
            raise RoutingFileError(f"{where}: responses: true is for `openai` upstreams only")
        base_url = item.get("base_url") or ""
        if provider != ProviderKind.DEMO and not str(base_url).startswith(("http://", "https://")):
            raise RoutingFileError(f"{where}: base_url must be an http(s) URL")
        env_name = item.get("api_key_env")
        secret = None
        if env_name:
            if env_name not in env:
                raise RoutingFileError(f"{where}: environment variable {env_name} is not set")
            secret = env[env_name]
        upstreams.append(
            {
                "name": item["name"],
                "provider": provider,
                "base_url": str(base_url),
                "wallet": wallet,
                "timeout": timeout,
                "responses": responses,
                "secret": secret,
            }
        )
    models, model_names = [], set()
    for i, item in enumerate(models_in):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise RoutingFileError(f"models[{i}]: needs a `name`")
        where = f"model {item['name']!r}"
        if item["name"] in model_names:
            raise RoutingFileError(f"{where}: named twice")
        model_names.add(item["name"])
        max_out = item.get("max_output_tokens")
        if max_out is not None and (
            isinstance(max_out, bool) or not isinstance(max_out, int) or max_out < 1
        ):
            raise RoutingFileError(f"{where}: max_output_tokens must be a positive integer")
        routes, seen = [], set()
        for j, route in enumerate(item.get("routes") or []):
            rwhere = f"{where} route {j + 1}"
            if not isinstance(route, dict) or route.get("upstream") not in names:
                raise RoutingFileError(f"{rwhere}: `upstream` must name an upstream of this file")
            upstream_model = route.get("model") or item["name"]
            if (route["upstream"], upstream_model) in seen:
                raise RoutingFileError(f"{rwhere}: the same upstream and model twice")
            seen.add((route["upstream"], upstream_model))
            prices = _price_parts(route.get("price") or {}, rwhere)
            weight = route.get("weight", 1)
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise RoutingFileError(f"{rwhere}: weight must be a positive integer")
            routes.append(
                {
                    "upstream": route["upstream"],
                    "model": str(upstream_model),
                    "position": j,
                    "weight": weight,
                    **prices,
                }
            )
        models.append({"name": item["name"], "max_output_tokens": max_out, "routes": routes})
    return upstreams, models


@transaction.atomic
def routing_apply(*, data: Any, env: dict[str, str] | None = None, actor: Any = None) -> dict:
    """Make the routing table match `data` (a parsed routing file). Idempotent: rows that
    already match are not written. What the file no longer names is disabled, never deleted,
    so usage history keeps its routes. Returns counts of what changed."""
    upstreams, models = _validate(data, dict(os.environ) if env is None else env)
    changed = {"created": 0, "updated": 0, "disabled": 0}

    def save(obj, fields: dict) -> None:
        dirty = obj._state.adding or any(getattr(obj, k) != v for k, v in fields.items())
        if dirty:
            for k, v in fields.items():
                setattr(obj, k, v)
            changed["created" if obj._state.adding else "updated"] += 1
            obj.save()

    by_name: dict[str, Upstream] = {}
    for spec in upstreams:
        upstream = Upstream.objects.select_for_update().filter(name=spec["name"]).first()
        upstream = upstream or Upstream(name=spec["name"])
        fields = {k: spec[k] for k in ("provider", "base_url", "wallet", "timeout", "responses")}
        if upstream._state.adding:
            fields["enabled"] = True
        if spec["secret"] is not None and (
            upstream._state.adding or upstream.api_key != spec["secret"]
        ):
            upstream.set_api_key(spec["secret"])
            if not upstream._state.adding:
                changed["updated"] += 1
                upstream.save(update_fields=["api_key_encrypted", "updated_at"])
        save(upstream, fields)
        by_name[upstream.name] = upstream
    for upstream in Upstream.objects.exclude(name__in=by_name).filter(enabled=True):
        _upstream_set_enabled(upstream, False, "no longer in the routing file", actor)
        changed["disabled"] += 1

    keep_routes: set[int] = set()
    model_names = []
    for spec in models:
        model = Model.objects.filter(name=spec["name"]).first() or Model(name=spec["name"])
        save(model, {"enabled": True, "max_output_tokens": spec["max_output_tokens"]})
        model_names.append(model.name)
        for r in spec["routes"]:
            upstream = by_name[r["upstream"]]
            route = Route.objects.filter(
                model=model, upstream=upstream, upstream_model=r["model"]
            ).first() or Route(model=model, upstream=upstream, upstream_model=r["model"])
            prices = {k: v for k, v in r.items() if k.startswith("price_")}
            # A part the file changes is hand-set from now on; the catalog keeps the rest.
            catalog_parts = [
                part
                for part in (route.price_catalog_parts or [])
                if not route._state.adding
                and getattr(route, f"price_{part}", None) == prices.get(f"price_{part}")
            ]
            if route._state.adding or catalog_parts != route.price_catalog_parts:
                prices["price_catalog_parts"] = catalog_parts
            save(
                route,
                {"position": r["position"], "weight": r["weight"], **prices, "enabled": True},
            )
            keep_routes.add(route.pk)
    changed["disabled"] += (
        Route.objects.filter(enabled=True).exclude(pk__in=keep_routes).update(enabled=False)
    )
    changed["disabled"] += (
        Model.objects.filter(enabled=True).exclude(name__in=model_names).update(enabled=False)
    )
    if any(changed.values()):
        audit_record(
            org=None, actor=actor, action="routing.apply", target="routing", changes=changed
        )
    transaction.on_commit(routing_cache_clear)
    return changed


def routing_apply_file(*, path: str, actor: Any = None) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise RoutingFileError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RoutingFileError(f"{path} is not valid YAML: {exc}") from exc
    return routing_apply(data=data, actor=actor)


def _env_name(upstream: Upstream) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in upstream.name.upper()) + "_KEY"


def routing_export() -> dict:
    """The routing table as a routing file (enabled rows only; secrets never leave)."""
    upstreams = []
    for up in Upstream.objects.filter(enabled=True).order_by("name"):
        item = {
            "name": up.name,
            "provider": up.provider,
            "base_url": up.base_url,
        }
        if up.api_key_encrypted:
            item["api_key_env"] = _env_name(up)
        item.update({"wallet": up.wallet, "timeout": up.timeout})
        if up.responses:
            item["responses"] = True
        upstreams.append(item)
    enabled = {u["name"] for u in upstreams}
    models = []
    for model in Model.objects.filter(enabled=True).order_by("name"):
        routes = []
        for route in (
            model.routes.filter(enabled=True).select_related("upstream").order_by("position", "id")
        ):
            if route.upstream.name not in enabled:
                continue
            price = {}
            for key in PRICE_KEYS:
                value = getattr(route, f"price_{key}")
                if value is not None:
                    price[key] = _plain(value)
            if route.price_tiers:
                price["tiers"] = route.price_tiers
            entry = {"upstream": route.upstream.name, "model": route.upstream_model, "price": price}
            if route.weight != 1:
                entry["weight"] = route.weight
            routes.append(entry)
        item = {"name": model.name}
        if model.max_output_tokens:
            item["max_output_tokens"] = model.max_output_tokens
        item["routes"] = routes
        models.append(item)
    return {"upstreams": upstreams, "models": models}


def _plain(value: Decimal) -> str:
    """Prices as the operator writes them: at least two decimals, no trailing zeros beyond."""
    value = value.normalize()
    if value.as_tuple().exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")


def routing_export_yaml() -> str:
    return yaml.safe_dump(routing_export(), sort_keys=False, allow_unicode=True)


def _upstream_set_enabled(upstream: Upstream, enabled: bool, reason: str, actor: Any) -> None:
    upstream.enabled = enabled
    reason = redact_secrets(reason)  # upstreams echo their keys in error text
    upstream.disabled_reason = "" if enabled else reason[:1000]
    upstream.disabled_at = None if enabled else timezone.now()
    upstream.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
    audit_record(
        org=None,
        actor=actor,
        action="upstream.enable" if enabled else "upstream.disable",
        target=upstream,
        changes={"reason": reason} if not enabled else {},
    )
    transaction.on_commit(routing_cache_clear)


@transaction.atomic
def upstream_disable(*, upstream_id: int, reason: str, actor: Any = None) -> bool:
    """Disable an upstream (the gateway does it on 401/403/insufficient_quota). True if it
    was enabled; the reason is what operators see in admin."""
    upstream = Upstream.objects.select_for_update().filter(pk=upstream_id, enabled=True).first()
    if upstream is None:
        return False
    _upstream_set_enabled(upstream, False, reason, actor)
    return True


@transaction.atomic
def upstream_enable(*, upstream_id: int, actor: Any = None) -> None:
    upstream = Upstream.objects.select_for_update().get(pk=upstream_id)
    if not upstream.enabled:
        _upstream_set_enabled(upstream, True, "", actor)


@transaction.atomic
def prices_import(*, changes: list, actor: Any = None) -> int:
    """Write what `routing.catalog.prices_diff` proposed (its "set", "update" and "force"
    lines), marking each written part as the catalog's; audited. Returns how many fields."""
    from routing.catalog import PRICE_PARTS

    written = 0
    for change in changes:
        if not change.writes:
            continue
        if change.model_id is not None:
            Model.objects.filter(pk=change.model_id).update(max_output_tokens=change.new)
            written += 1
            continue
        route = Route.objects.select_for_update().get(pk=change.route_id)
        if change.part in PRICE_PARTS:
            setattr(route, f"price_{change.part}", to_money(change.new))
        elif change.part == "tiers":
            route.price_tiers = tiers_validate(change.new, "catalog tiers")
        else:
            setattr(route, change.part, change.new)
        route.price_catalog_parts = sorted({*(route.price_catalog_parts or []), change.part})
        route.save()
        written += 1
    if written:
        audit_record(
            org=None,
            actor=actor,
            action="prices.import",
            target="routing",
            changes={"written": written, "lines": [c.line() for c in changes if c.writes][:200]},
        )
    transaction.on_commit(routing_cache_clear)
    return written
