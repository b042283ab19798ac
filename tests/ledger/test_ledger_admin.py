"""Operators' admin for the ledger: every changelist loads and filters, ledger rows are
read-only, corrections post compensating transactions with a reason and the operator, and
the operator overview shows the right numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEvent
from ledger.models import (
    Account,
    Budget,
    BudgetAlert,
    BudgetCounter,
    Hold,
    Posting,
    Transaction,
    TransactionKind,
    UsageKind,
    UsageRecord,
)
from ledger.services.budgets import budget_set
from ledger.services.holds import hold_capture, hold_place, hold_void
from projects.services import key_create
from tests.factories import OrganizationFactory, ProjectFactory, UserFactory
from tests.ledger.ledger_helpers import assert_reconciled, fund, wallet

pytestmark = pytest.mark.django_db

LEDGER_MODELS = [
    Account,
    Transaction,
    Posting,
    Hold,
    UsageRecord,
    Budget,
    BudgetCounter,
    BudgetAlert,
]


def _url(model, view="changelist", *args):
    return reverse(f"admin:ledger_{model._meta.model_name}_{view}", args=args)


def _request(
    org,
    project,
    api_key,
    *,
    model="gpt-4o",
    upstream="relay-a",
    wallet_="CREDIT",
    prompt=1_000_000,
    completion=0,
    price_in="2",
    price_out="0",
    multiplier="1.5",
    kind=UsageKind.API,
    run=None,
    fallback=False,
    failed=False,
    attempts=None,
):
    """One finished request through the real hold/capture (or void) path."""
    cost = (Decimal(prompt) * Decimal(price_in) + Decimal(completion) * Decimal(price_out)) / 10**6
    cost *= Decimal(multiplier)
    hold = hold_place(
        org_id=org.pk, currency=wallet_, amount=cost, project_id=project.pk, api_key_id=api_key.pk
    )
    usage = {
        "request_id": f"req_{uuid.uuid4().hex[:16]}",
        "project_id": project.pk,
        "api_key_id": api_key.pk,
        "kind": kind,
        "researcher_run_id": run,
        "model": model,
        "upstream": "" if failed else upstream,
        "upstream_model": model,
        "attempts": attempts
        or [{"upstream": upstream, "model": model, "status": "ok", "error": ""}],
        "fallback": fallback,
        "wallet": wallet_,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "price_input": Decimal(price_in),
        "price_output": Decimal(price_out),
        "price_cached_input": Decimal(price_in),
        "price_multiplier": Decimal(multiplier),
    }
    if failed:
        return hold_void(hold_id=hold.pk, usage=usage).usage_record
    return hold_capture(hold_id=hold.pk, amount=cost, usage=usage).usage_record


@pytest.fixture
def operator():
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def traffic():
    org = OrganizationFactory(slug="acme")
    project = ProjectFactory(org=org, name="prod")
    api_key = key_create(project=project, name="main").api_key
    fund(org, "CREDIT", "100")
    fund(org, "RMB", "100")
    budget_set(
        org=org,
        project=project,
        currency="CREDIT",
        amount=Decimal("50"),
        period="month",
        soft_threshold="0.01",
    )
    records = {
        "a": _request(org, project, api_key),  # cost 3.00, upstream cost 2.00
        "b": _request(
            org,
            project,
            api_key,
            model="claude",
            upstream="relay-b",
            fallback=True,
            attempts=[
                {"upstream": "relay-a", "status": "503", "error": "down"},
                {"upstream": "relay-b", "status": "ok", "error": ""},
            ],
        ),
        "rmb": _request(
            org,
            project,
            api_key,
            model="qwen",
            upstream="cn-relay",
            wallet_="RMB",
            price_in="1",
            multiplier="1",
        ),
        "failed": _request(
            org,
            project,
            api_key,
            failed=True,
            attempts=[{"upstream": "relay-a", "status": "500", "error": "boom"}],
        ),
        "research": _request(org, project, api_key, kind=UsageKind.RESEARCHER, run=uuid.uuid4()),
    }
    other = OrganizationFactory(slug="other")
    other_project = ProjectFactory(org=other, name="side")
    other_key = key_create(project=other_project, name="k").api_key
    fund(other, "CREDIT", "10")
    records["other"] = _request(
        other, other_project, other_key, model="gpt-4o-mini", price_in="1", multiplier="1"
    )
    return {"org": org, "project": project, "key": api_key, "records": records, "other": other}


def test_every_ledger_changelist_and_detail_page_loads(admin_client, traffic):
    for model in LEDGER_MODELS:
        response = admin_client.get(_url(model))
        assert response.status_code == 200, model
        obj = model.objects.first()
        assert obj is not None, model
        assert admin_client.get(_url(model, "change", obj.pk)).status_code == 200, model
    html = admin_client.get(
        _url(Transaction, "change", traffic["records"]["a"].transaction_id)
    ).content.decode()
    assert "usage_revenue" in html  # the postings inline


@pytest.mark.parametrize(
    "query,expected,absent",
    [
        ("org=acme", ["a", "b", "rmb", "failed", "research"], ["other"]),
        ("model=claude", ["b"], ["a", "other"]),
        ("upstream=cn-relay", ["rmb"], ["a", "b"]),
        ("wallet=RMB", ["rmb"], ["a", "other"]),
        ("kind=researcher", ["research"], ["a"]),
        ("status=failed", ["failed"], ["a"]),
        ("fallback__exact=1", ["b"], ["a"]),
        ("project=prod", ["a"], ["other"]),
    ],
)
def test_usage_records_filter_by_every_dimension(admin_client, traffic, query, expected, absent):
    html = admin_client.get(_url(UsageRecord) + "?" + query).content.decode()
    for name in expected:
        assert traffic["records"][name].request_id in html, (query, name)
    for name in absent:
        assert traffic["records"][name].request_id not in html, (query, name)


def test_usage_records_filter_by_key_and_date(admin_client, traffic):
    records = traffic["records"]
    html = admin_client.get(_url(UsageRecord) + f"?key={traffic['key'].prefix}").content.decode()
    assert records["a"].request_id in html and records["other"].request_id not in html
    today = datetime.now(UTC).date()
    html = admin_client.get(
        _url(UsageRecord) + f"?created_at__gte={today}&created_at__lt={today + timedelta(days=1)}"
    ).content.decode()
    assert records["a"].request_id in html
    html = admin_client.get(
        _url(UsageRecord) + f"?created_at__year={today.year}&created_at__month={today.month}"
    ).content.decode()
    assert records["a"].request_id in html


def test_other_changelists_filter_by_organization_kind_and_status(admin_client, traffic):
    for model, query in [
        (Account, "org=acme&kind__exact=wallet"),
        (Transaction, "org=acme&kind__exact=usage&wallet=CREDIT"),
        (Posting, "org=acme&currency__exact=RMB"),
        (Hold, "org=acme&status__exact=voided"),
        (Budget, "org=acme&period__exact=month"),
        (BudgetCounter, "org=acme"),
        (BudgetAlert, "org=acme"),
    ]:
        response = admin_client.get(_url(model) + "?" + query)
        assert response.status_code == 200, model
        assert response.context["cl"].result_count >= 1, model


def test_ledger_rows_are_read_only(admin_client, traffic):
    txn = Transaction.objects.first()
    for model in LEDGER_MODELS:
        obj = model.objects.first()
        assert admin_client.get(_url(model, "add")).status_code == 403, model
        assert admin_client.post(_url(model, "delete", obj.pk)).status_code == 403, model
        page = admin_client.get(_url(model, "change", obj.pk)).content.decode()
        assert 'name="_save"' not in page, model
    before = Transaction.objects.count()
    admin_client.post(_url(Transaction, "change", txn.pk), {"reason": "edited"})
    assert Transaction.objects.get(pk=txn.pk).reason != "edited"
    assert Transaction.objects.count() == before


def test_changelists_do_not_query_per_row(admin_client, traffic):
    org, project, api_key = traffic["org"], traffic["project"], traffic["key"]

    def queries(model) -> int:
        admin_client.get(_url(model))  # warm caches (sessions, content types)
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(_url(model)).status_code == 200
        return len(ctx.captured_queries)

    models = (UsageRecord, Transaction, Posting, Hold, BudgetCounter, Account)
    before = {model: queries(model) for model in models}
    for _ in range(12):
        _request(org, project, api_key, price_in="0.01")
    after = {model: queries(model) for model in models}
    assert after == before


def test_the_adjustment_action_posts_a_compensating_transaction(admin_client, operator, traffic):
    usage_txn = traffic["records"]["a"].transaction
    before = wallet(traffic["org"]).posted
    response = admin_client.post(
        _url(Transaction), {"action": "post_adjustment", "_selected_action": [usage_txn.pk]}
    )
    assert response.status_code == 200 and "Reason" in response.content.decode()
    response = admin_client.post(
        _url(Transaction),
        {
            "action": "post_adjustment",
            "_selected_action": [usage_txn.pk],
            "currency": "CREDIT",
            "amount": "1.25",
            "reason": "Upstream outage credit",
            "apply": "Post correction",
        },
    )
    assert response.status_code == 302
    correction = Transaction.objects.get(corrects=usage_txn)
    assert correction.kind == TransactionKind.ADJUSTMENT
    assert correction.reason == "Upstream outage credit"
    assert correction.created_by == operator
    assert wallet(traffic["org"]).posted == before + Decimal("1.25")
    assert AuditEvent.objects.filter(
        action="ledger.adjustment", target_id=str(correction.pk)
    ).exists()
    assert_reconciled()


def test_an_adjustment_that_would_overdraw_is_refused_with_the_reason(admin_client, traffic):
    w = wallet(traffic["org"], "RMB")
    response = admin_client.post(
        _url(Account),
        {
            "action": "post_adjustment",
            "_selected_action": [w.pk],
            "currency": "RMB",
            "amount": "-1000",
            "reason": "typo test",
            "apply": "Post correction",
        },
    )
    assert response.status_code == 200
    assert "would overdraw" in response.content.decode()
    assert wallet(traffic["org"], "RMB").posted == w.posted
    assert not Transaction.objects.filter(kind=TransactionKind.ADJUSTMENT).exists()


def test_the_reverse_action_refunds_a_request_once(admin_client, operator, traffic):
    record = traffic["records"]["a"]
    before = wallet(traffic["org"]).posted
    data = {
        "action": "reverse",
        "_selected_action": [record.transaction_id],
        "reason": "Bad answer",
        "apply": "Post correction",
    }
    assert admin_client.post(_url(Transaction), data).status_code == 302
    assert wallet(traffic["org"]).posted == before + record.cost
    refund = Transaction.objects.get(corrects_id=record.transaction_id)
    assert refund.kind == TransactionKind.REFUND and refund.created_by == operator
    again = admin_client.post(_url(Transaction), data)
    assert "nothing left to reverse" in again.content.decode()
    assert Transaction.objects.filter(corrects_id=record.transaction_id).count() == 1
    assert_reconciled()


def test_the_overview_shows_revenue_cost_margin_health_orgs_and_researcher(admin_client, traffic):
    response = admin_client.get(reverse("admin_overview"))
    assert response.status_code == 200
    ctx = response.context
    wallets = {row["wallet"]: row for row in ctx["wallets"]}
    # acme CREDIT: a, b, research at 3.00 each (cost 2.00 upstream); other: 1.00 at cost 1.00.
    assert wallets["CREDIT"]["requests"] == 4
    assert wallets["CREDIT"]["revenue"] == Decimal("10")
    assert wallets["CREDIT"]["upstream_cost"] == Decimal("7")
    assert wallets["CREDIT"]["margin"] == Decimal("3")
    assert wallets["RMB"]["revenue"] == Decimal("1") and wallets["RMB"]["margin"] == 0
    models = {(r["wallet"], r["model"]): r for r in ctx["models"]}
    assert models[("CREDIT", "gpt-4o")]["margin"] == Decimal("2")
    assert models[("CREDIT", "gpt-4o")]["margin_pct"].quantize(Decimal("0.01")) == Decimal("33.33")
    upstreams = {(r["wallet"], r["upstream"]): r for r in ctx["upstreams"]}
    assert upstreams[("CREDIT", "relay-b")]["fallbacks"] == 1
    health = {r["upstream"]: r for r in ctx["health"]}
    # relay-a: a, research, other (ok) + b's first try (503) + failed (500) = 5 attempts, 2 failed
    assert (health["relay-a"]["attempts"], health["relay-a"]["failures"]) == (5, 2)
    assert health["relay-a"]["failure_rate"] == Decimal("40")
    assert (health["relay-b"]["served"], health["relay-b"]["after_fallback"]) == (1, 1)
    top = ctx["organizations"][0]
    assert (top["org__slug"], top["wallet"], top["revenue"]) == ("acme", "CREDIT", Decimal("9"))
    assert [(r["wallet"], r["runs"], r["steps"]) for r in ctx["researcher"]] == [("CREDIT", 1, 1)]
    html = response.content.decode()
    assert "Operator overview" in html and "relay-b" in html and "40.0%" in html


def test_the_overview_takes_a_date_range(admin_client, traffic):
    long_ago = "?start=2020-01-01&end=2020-01-31"
    response = admin_client.get(reverse("admin_overview") + long_ago)
    assert response.status_code == 200
    assert response.context["wallets"] == [] and response.context["health"] == []
    assert "No settled usage in this range." in response.content.decode()


def test_the_overview_is_for_staff_only(client, traffic):
    client.force_login(UserFactory())
    response = client.get(reverse("admin_overview"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_admin_index_links_to_the_overview(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin_overview") in html


def test_every_model_of_ours_is_in_admin_and_its_changelist_loads(admin_client, traffic):
    from django.apps import apps
    from django.contrib import admin

    ours = ("accounts", "projects", "ledger", "routing", "researcher")
    missing = [
        m._meta.label
        for m in apps.get_models()
        if m._meta.app_label in ours and m not in admin.site._registry
    ]
    assert not missing
    for model in admin.site._registry:
        if model._meta.app_label in ours:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            assert admin_client.get(url).status_code == 200, model
