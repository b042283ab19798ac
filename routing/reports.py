"""Read models for /v1/generation and /v1/key (sync; views call them through sync_to_async)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from accounts.redaction import redact_secrets
from ledger.models import UsageRecord
from routing.auth import KeyContext


def generation_get(*, org_id: int, request_id: str) -> dict | None:
    """One usage record of the organization, in the /v1/generation shape; None otherwise."""
    record = (
        UsageRecord.objects.for_org(org_id)
        .select_related("project", "api_key")
        .filter(request_id=request_id)
        .first()
    )
    if record is None:
        return None
    return {
        "id": record.request_id,
        "kind": record.kind,
        "endpoint": record.endpoint,
        "project": record.project.name if record.project_id else None,
        "api_key": record.api_key.prefix if record.api_key_id else None,
        "model": record.model,
        "route": {"upstream": record.upstream or None, "model": record.upstream_model or None},
        "attempts": _attempts_shown(record.attempts),
        "fallback": record.fallback,
        "wallet": record.wallet or None,
        "usage": {
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "total_tokens": record.prompt_tokens + record.completion_tokens,
            "cached_tokens": record.cached_tokens,
            "cache_write_tokens": record.cache_write_tokens,
            "cache_write_1h_tokens": record.cache_write_1h_tokens,
            "reasoning_tokens": record.reasoning_tokens,
            "input_audio_tokens": record.input_audio_tokens,
            "output_audio_tokens": record.output_audio_tokens,
        },
        "estimated": record.estimated,
        "cost": format(record.cost, "f"),
        "price": {
            "input": format(record.price_input, "f"),
            "output": format(record.price_output, "f"),
            "cached_input": format(record.price_cached_input, "f"),
            "multiplier": format(record.price_multiplier, "f"),
            # every part used, which were defaulted (and why), the tier, the flat fee
            "parts": {k: v for k, v in (record.price_parts or {}).items() if k != "upstream_cost"},
        },
        "status": record.status,
        "error": redact_secrets(record.error) or None,
        "stream": record.stream,
        "latency_ms": record.latency_ms,
        "researcher_run": str(record.researcher_run_id) if record.researcher_run_id else None,
        "created_at": record.created_at.isoformat(),
    }


def _attempts_shown(attempts) -> list:
    """Attempts as a client may see them: error text redacted (older records were stored
    before redaction)."""
    shown = []
    for attempt in attempts or ():
        if isinstance(attempt, dict) and attempt.get("error"):
            attempt = {**attempt, "error": redact_secrets(str(attempt["error"]))}
        shown.append(attempt)
    return shown


def _plain(value):
    """JSON-ready: money as decimal strings (never floats), dates as ISO strings."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def key_report(*, ctx: KeyContext) -> dict:
    from ledger.selectors import budgets_status, wallet_balances

    budgets = []
    if ctx.project_id is not None:
        budgets = [
            {k: _plain(v) for k, v in row.items()}
            for row in budgets_status(project_id=ctx.project_id, api_key_id=ctx.api_key_id)
        ]
    return {
        "name": ctx.name,
        "prefix": ctx.prefix,
        "project": ctx.project_name,
        "allowed_models": list(ctx.allowed_models),
        "allowed_wallets": list(ctx.allowed_wallets),
        "rate_limits": {
            "rpm": ctx.rpm_limit,
            "tpm": ctx.tpm_limit,
            "max_concurrent_streams": ctx.max_concurrent_streams,
        },
        "expires_at": ctx.expires_at.isoformat() if ctx.expires_at else None,
        "budgets": budgets,
        "wallets": [
            {k: _plain(v) for k, v in row.items()} for row in wallet_balances(org_id=ctx.org_id)
        ],
    }
