"""A Hypothesis state machine drives top-ups, holds, captures, voids, expiries, refunds,
adjustments and reversals, and after every step compares the ledger with a plain in-memory
model of what the balances and budget counters must be, then runs `reconcile`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.errors import BudgetExceeded, InsufficientBalance
from ledger.models import BudgetCounter
from ledger.services.adjustments import (
    CorrectionRefused,
    adjustment_post,
    transaction_reverse,
    usage_refund,
)
from ledger.services.budgets import budget_set
from ledger.services.holds import hold_capture, hold_place, hold_void, holds_expire
from ledger.services.reconcile import reconcile
from ledger.services.topups import topup_grant
from tests.factories import OrganizationFactory, ProjectFactory
from tests.ledger.ledger_helpers import wallet

pytestmark = pytest.mark.django_db

ZERO = Decimal("0")
CURRENCIES = st.sampled_from(["CREDIT", "RMB"])
AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("6"), places=2)
HOLDS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3"), places=2)
OPENING = Decimal("8")
BUDGET = Decimal("10")  # the project's CREDIT budget (period `total`)


@dataclass
class ModelHold:
    pk: object
    currency: str
    amount: Decimal
    budgeted: bool
    expired: bool
    state: str = "pending"


@dataclass
class ModelCharge:
    record: object
    charged: Decimal
    refunded: Decimal = ZERO


class LedgerMachine(RuleBasedStateMachine):
    credits = Bundle("credits")

    @initialize()
    def open_books(self):
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.org = OrganizationFactory()
        self.project = ProjectFactory(org=self.org)
        budget_set(
            org=self.org, project=self.project, currency="CREDIT", amount=BUDGET, period="total"
        )
        self.posted = {"CREDIT": ZERO, "RMB": ZERO}
        self.held = {"CREDIT": ZERO, "RMB": ZERO}
        for currency in self.posted:  # an opening balance, so most steps have money to move
            topup_grant(org=self.org, currency=currency, amount=OPENING, reference=uuid.uuid4().hex)
            self.posted[currency] = OPENING
        self.reserved = ZERO
        self.spent = ZERO
        self.all_holds: list[ModelHold] = []
        self.charges: list[ModelCharge] = []

    def teardown(self):
        if hasattr(self, "_atomic"):
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

    def _available(self, currency: str) -> Decimal:
        return self.posted[currency] - self.held[currency]

    @rule(target=credits, currency=CURRENCIES, amount=AMOUNTS)
    def top_up(self, currency, amount):
        txn = topup_grant(
            org=self.org, currency=currency, amount=amount, reference=uuid.uuid4().hex
        )
        self.posted[currency] += amount
        return (txn, currency, amount)

    @rule(
        currency=CURRENCIES,
        amount=HOLDS,
        budgeted=st.booleans(),
        expired=st.booleans(),
    )
    def place(self, currency, amount, budgeted, expired):
        budget_applies = budgeted and currency == "CREDIT"
        short = amount > self._available(currency)
        over = budget_applies and self.reserved + self.spent + amount > BUDGET
        try:
            hold = hold_place(
                org_id=self.org.pk,
                currency=currency,
                amount=amount,
                project_id=self.project.pk if budgeted else None,
                ttl_seconds=-1 if expired else 3600,
            )
        except InsufficientBalance:
            assert short
            return
        except BudgetExceeded:
            assert over
            return
        assert not short and not over
        event("hold placed")
        self.held[currency] += amount
        if budget_applies:
            self.reserved += amount
        self.all_holds.append(ModelHold(hold.pk, currency, amount, budget_applies, expired))

    def _pending(self) -> list[ModelHold]:
        return [h for h in self.all_holds if h.state == "pending"]

    def _release(self, hold: ModelHold) -> None:
        self.held[hold.currency] -= hold.amount
        if hold.budgeted:
            self.reserved -= hold.amount

    @precondition(lambda self: any(h.state == "pending" for h in self.all_holds))
    @rule(data=st.data(), cost=st.decimals(min_value=ZERO, max_value=Decimal("4"), places=2))
    def capture(self, data, cost):
        hold = data.draw(st.sampled_from(self._pending()))
        result = hold_capture(
            hold_id=hold.pk,
            amount=cost,
            usage={"request_id": uuid.uuid4().hex, "model": "m", "wallet": hold.currency},
        )
        assert result.created
        event("hold captured")
        charge = min(cost, hold.amount)
        hold.state = "captured"
        self._release(hold)
        self.posted[hold.currency] -= charge
        if hold.budgeted:
            self.spent += charge
        if charge > 0:
            self.charges.append(ModelCharge(result.usage_record, charge))

    @precondition(lambda self: any(h.state == "pending" for h in self.all_holds))
    @rule(data=st.data())
    def void(self, data):
        hold = data.draw(st.sampled_from(self._pending()))
        result = hold_void(hold_id=hold.pk)
        assert result.created
        event("hold voided")
        hold.state = "voided"
        self._release(hold)

    @precondition(lambda self: any(h.state != "pending" for h in self.all_holds))
    @rule(data=st.data(), capture=st.booleans())
    def resolve_again(self, data, capture):
        """A second capture or void of a resolved hold changes nothing and returns the first."""
        hold = data.draw(st.sampled_from([h for h in self.all_holds if h.state != "pending"]))
        if capture:
            result = hold_capture(hold_id=hold.pk, amount=Decimal("1"))
        else:
            result = hold_void(hold_id=hold.pk)
        assert not result.created and result.hold.status == hold.state
        event("resolved twice")

    @rule()
    def expire(self):
        due = [h for h in self.all_holds if h.state == "pending" and h.expired]
        assert holds_expire() == len(due)
        if due:
            event("holds expired")
        for hold in due:
            hold.state = "expired"
            self._release(hold)

    @precondition(lambda self: bool(self.charges))
    @rule(
        data=st.data(),
        part=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3"), places=2),
    )
    def refund(self, data, part):
        charge = data.draw(st.sampled_from(self.charges))
        left = charge.charged - charge.refunded
        currency = charge.record.wallet
        try:
            usage_refund(
                usage_record=charge.record, amount=part, reason="model test", operator=None
            )
        except CorrectionRefused:
            assert part > left
            return
        assert part <= left
        event("refund posted")
        charge.refunded += part
        self.posted[currency] += part

    @rule(currency=CURRENCIES, amount=AMOUNTS, credit=st.booleans())
    def adjust(self, currency, amount, credit):
        value = amount if credit else -amount
        try:
            adjustment_post(
                org=self.org, currency=currency, amount=value, reason="model test", operator=None
            )
        except InsufficientBalance:
            assert not credit and amount > self._available(currency)
            return
        assert credit or amount <= self._available(currency)
        self.posted[currency] += value

    @rule(credit=consumes(credits))
    def reverse_credit(self, credit):
        txn, currency, amount = credit
        try:
            transaction_reverse(transaction=txn, reason="model test", operator=None)
        except InsufficientBalance:
            assert amount > self._available(currency)
            return
        assert amount <= self._available(currency)
        event("credit reversed")
        self.posted[currency] -= amount
        with pytest.raises(CorrectionRefused):  # a reversal happens once
            transaction_reverse(transaction=txn, reason="again", operator=None)

    @invariant()
    def books_match_the_model(self):
        if not hasattr(self, "org"):
            return
        for currency in ("CREDIT", "RMB"):
            w = wallet(self.org, currency)
            assert (w.posted, w.held) == (self.posted[currency], self.held[currency]), currency
            assert w.posted >= w.held
        counter = BudgetCounter.objects.filter(budget__project=self.project).first()
        if counter is not None:
            assert (counter.reserved, counter.spent) == (self.reserved, self.spent)
        report = reconcile(org=self.org)
        assert report.ok, report.problems


def test_the_ledger_matches_a_model_after_every_step(db):
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=35,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
