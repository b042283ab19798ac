"""Researcher fixtures: tenants with money, mock upstreams over HTTP, price CSV, run helpers."""

from __future__ import annotations

import subprocess
from datetime import date, timedelta

import pytest

from ledger.models import Account, AccountKind, Hold, HoldStatus
from ledger.services.reconcile import reconcile
from tests.routing.conftest import (  # noqa: F401 - fixtures re-exported
    _mock_server,
    _mock_server_b,
    apply,
    grant,
    make_tenant,
    upstream,
    upstream_b,
)


def price_csv(days: int = 260, start: str = "2025-01-01", drift: float = 0.002) -> str:
    """A deterministic daily series (weekdays only), trending up with a wobble."""
    lines = ["date,open,high,low,close,volume"]
    day = date.fromisoformat(start)
    close = 100.0
    n = 0
    while n < days:
        if day.weekday() < 5:
            wobble = ((n * 37) % 11 - 5) / 200
            open_ = close
            close = round(close * (1 + drift + wobble / 5), 2)
            high = round(max(open_, close) * 1.01, 2)
            low = round(min(open_, close) * 0.99, 2)
            lines.append(f"{day.isoformat()},{open_:.2f},{high},{low},{close:.2f},{1000 + n}")
            n += 1
        day += timedelta(days=1)
    return "\n".join(lines) + "\n"


def research_routes(base_url: str, *, model: str = "researcher-model", price=None, wallet="CREDIT"):
    apply(
        [{"name": "research-up", "base_url": base_url, "wallet": wallet}],
        [
            {
                "name": model,
                "routes": [
                    {
                        "upstream": "research-up",
                        "model": "gpt-4o-mini",
                        "price": price or {"input": "1000", "output": "2000"},
                    }
                ],
            }
        ],
    )


def run_body(**overrides) -> dict:
    body = {
        "question": "Is NVDA's momentum holding after earnings?",
        "tickers": ["NVDA"],
        "depth": "quick",
        "model": "researcher-model",
        "budget": {"currency": "CREDIT", "amount": "50"},
        "prices": price_csv(),
    }
    body.update(overrides)
    return body


def wallet(org, currency: str = "CREDIT") -> Account:
    return Account.objects.get(org=org, currency=currency, kind=AccountKind.WALLET)


def assert_reconciled(org=None) -> None:
    assert not Hold.objects.filter(status=HoldStatus.PENDING).exists()
    report = reconcile(org=org)
    assert report.ok, "\n".join(str(p) for p in report.problems)


@pytest.fixture(scope="session")
def redis_broker_url():
    from django.conf import settings

    return settings.REDIS_URL


def kill(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=10)
