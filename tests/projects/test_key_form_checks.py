"""The key form: budgets on create, model names checked, no past expiry, project preselected,
errors written as sentences."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from ledger.models import Budget
from projects.models import ApiKey
from routing.models import Model
from tests.projects.dashboard_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


def _post(tenant, **fields):
    data = {"project": tenant.project.pk, "name": "k", **fields}
    return tenant.client("member").post(reverse("projects:key_create"), data)


def test_a_budget_set_on_the_create_form_applies_to_the_new_key(tenant):
    response = _post(tenant, budget_amount="2.5", budget_currency="RMB", budget_period="total")
    assert response.status_code == 302
    key = ApiKey.objects.get(project=tenant.project, name="k")
    budget = Budget.objects.get(api_key=key)
    assert (budget.currency, budget.amount, budget.period) == ("RMB", Decimal("2.5"), "total")


def test_a_zero_budget_is_refused_with_a_sentence(tenant):
    response = _post(tenant, budget_amount="0", budget_currency="CREDIT")
    body = response.content.decode()
    assert response.status_code == 200
    assert "A budget must be more than zero" in body
    assert not ApiKey.objects.filter(name="k").exists()


def test_unknown_model_names_are_refused(tenant):
    Model.objects.create(name="gpt-4o-mini")
    response = _post(tenant, allowed_models="gpt-4o-mini, gtp-4o")
    body = response.content.decode()
    assert "Unknown model gtp-4o" in body and "gpt-4o-mini" in body
    assert not ApiKey.objects.filter(name="k").exists()
    assert _post(tenant, allowed_models="gpt-4o-mini").status_code == 302


def test_an_expiry_in_the_past_is_refused(tenant):
    response = _post(tenant, expires_at="2001-01-01T00:00")
    assert "The expiry is in the past" in response.content.decode()
    assert not ApiKey.objects.filter(name="k").exists()


def test_the_only_project_is_preselected(tenant):
    form = tenant.client("member").get(reverse("projects:key_create")).context["form"]
    assert form.initial.get("project") == tenant.project.pk


def test_reloading_the_created_page_creates_nothing(tenant):
    client = tenant.client("member")
    before = ApiKey.objects.count()
    location = _post(tenant)["Location"]
    for _ in range(3):
        assert client.get(location).status_code == 200
    assert ApiKey.objects.count() == before + 1


def test_budget_form_errors_read_as_sentences(tenant):
    response = tenant.client("owner").post(
        reverse("ledger:budget_save", args=["key", tenant.key.pk]),
        {"currency": "CREDIT", "amount": "0", "period": "total", "soft_threshold": "x"},
        follow=True,
    )
    body = response.content.decode()
    assert "A limit must be more than zero; to stop a budget, remove it." in body
    assert "Enter the alert share as a percentage, e.g. 80." in body
    message = body.split('class="messages"', 1)[1].split("</ul>", 1)[0]
    assert "soft_threshold" not in message and "amount:" not in message
