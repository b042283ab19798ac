"""The money core: accounts (wallets and system accounts), immutable transactions and
postings, two-phase holds, budgets with per-period counters, usage records and top-ups.

Sign convention: a posting's amount is signed and every transaction's postings sum to
zero per currency. A wallet's `posted` is the customer's money (credits are positive);
system accounts mirror it and carry no cached balance (it is the sum of their postings),
so no global row becomes a lock hot spot.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, JSONField, Q, Value
from django.db.models.functions import Now

from accounts.models import Organization
from accounts.tenancy import TenantManager, TenantQuerySet
from ledger.money import MONEY_DIGITS, MONEY_PLACES, Currency, MoneyField
from projects.models import ApiKey, Project


class AccountKind(models.TextChoices):
    WALLET = "wallet", "Wallet"
    PAYMENTS = "payments", "Payments received"
    USAGE_REVENUE = "usage_revenue", "Usage revenue"
    GRANTS = "grants", "Grants and promotions"
    ADJUSTMENTS = "adjustments", "Refunds and adjustments"
    SHORTFALL = "shortfall", "Shortfall (cost above hold)"
    # What customers owe after a card refund or dispute took back more than their wallet held.
    RECEIVABLE = "receivable", "Receivable (refunds and disputes beyond the wallet)"
    # An organization's monthly AI Researcher allowance (org set), spent before its wallet,
    # funded from the operator's promotions account (org null).
    ALLOWANCE = "allowance", "Researcher allowance"
    PROMOTIONS = "promotions", "Promotions (researcher allowances)"


# Accounts an organization holds money in: holds reserve on them, postings move `posted`.
FUNDING_KINDS = (AccountKind.WALLET, AccountKind.ALLOWANCE)


class Account(models.Model):
    """A wallet (org set, kind=wallet) or a system account (org null)."""

    org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts"
    )
    currency = models.CharField(max_length=8, choices=Currency.choices)
    kind = models.CharField(max_length=16, choices=AccountKind.choices)
    # Wallets only: updated in the same DB transaction as the postings/holds that move them.
    posted = MoneyField()
    held = MoneyField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "currency", "kind"],
                condition=Q(org__isnull=False),
                name="account_org_currency_kind_unique",
            ),
            models.UniqueConstraint(
                fields=["currency", "kind"],
                condition=Q(org__isnull=True),
                name="account_system_unique",
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="account_held_non_negative"),
            # The no-overdraft rule, as the database's last line of defence.
            models.CheckConstraint(
                condition=~Q(kind__in=["wallet", "allowance"]) | Q(posted__gte=F("held")),
                name="wallet_available_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["wallet", "allowance"], org__isnull=False)
                | Q(~Q(kind__in=["wallet", "allowance"]), org__isnull=True),
                name="account_wallet_has_org",
            ),
        ]

    def __str__(self) -> str:
        owner = self.org.slug if self.org_id else "system"
        return f"{owner}:{self.kind}:{self.currency}"

    @property
    def available(self):
        return self.posted - self.held


class TransactionKind(models.TextChoices):
    TOPUP = "topup", "Top-up (payment)"
    GRANT = "grant", "Operator grant"
    REDEMPTION = "redemption", "Redemption code"
    USAGE = "usage", "Usage"
    ADJUSTMENT = "adjustment", "Adjustment"
    REFUND = "refund", "Refund"
    ALLOWANCE = "allowance", "Researcher allowance (monthly)"
    # A card payment refunded or disputed at Stripe (negative), or a dispute won (positive).
    CHARGEBACK = "chargeback", "Card refund or dispute"


class ImmutableQuerySet(TenantQuerySet):
    """Ledger rows only gain rows; the database refuses too (trigger in a migration)."""

    def update(self, **kwargs):
        raise TypeError("ledger rows are immutable; post a compensating transaction")

    def delete(self):
        raise TypeError("ledger rows are immutable; post a compensating transaction")


class ImmutableModel(models.Model):
    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("ledger rows are immutable; post a compensating transaction")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("ledger rows are immutable; post a compensating transaction")


class Transaction(ImmutableModel):
    """A balanced set of postings. `reference` is the idempotency key (unique)."""

    org = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_transactions",
    )
    kind = models.CharField(max_length=16, choices=TransactionKind.choices)
    reference = models.CharField(max_length=200, unique=True, null=True, blank=True)
    corrects = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections"
    )
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The hold this transaction settles; unique, so a hold is captured at most once.
    hold = models.OneToOneField(
        "Hold", null=True, blank=True, on_delete=models.PROTECT, related_name="settlement"
    )
    created_at = models.DateTimeField(db_default=Now(), db_index=True)

    objects = models.Manager.from_queryset(ImmutableQuerySet)()

    class Meta:
        indexes = [models.Index(fields=["org", "-created_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}"


class Posting(ImmutableModel):
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="postings")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="postings")
    currency = models.CharField(max_length=8, choices=Currency.choices)
    amount = MoneyField()  # signed: positive credits the account

    objects = models.Manager.from_queryset(ImmutableQuerySet)()

    class Meta:
        indexes = [models.Index(fields=["account", "transaction"])]

    def __str__(self) -> str:
        return f"{self.account} {self.amount}"


class HoldStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CAPTURED = "captured", "Captured"
    VOIDED = "voided", "Voided"
    EXPIRED = "expired", "Expired"


class Period(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    TOTAL = "total", "Total"


class Budget(models.Model):
    """A limit on a project's or a key's spend in one currency per calendar period (UTC)."""

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="budgets")
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.PROTECT, related_name="budgets"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="budgets"
    )
    currency = models.CharField(max_length=8, choices=Currency.choices)
    amount = MoneyField()
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTH)
    soft_threshold = models.DecimalField(max_digits=5, decimal_places=4, default="0.8")
    created_at = models.DateTimeField(auto_now_add=True)
    # Removed budgets stop applying but keep their counters (history); never deleted.
    removed_at = models.DateTimeField(null=True, blank=True)
    # An AI Researcher run's own budget (period `total`): its steps' holds reserve against it
    # like a project's or key's budget (researcher sits above ledger: an id, not a key).
    researcher_run_id = models.UUIDField(null=True, blank=True, unique=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    project__isnull=False, api_key__isnull=True, researcher_run_id__isnull=True
                )
                | Q(project__isnull=True, api_key__isnull=False, researcher_run_id__isnull=True)
                | Q(project__isnull=True, api_key__isnull=True, researcher_run_id__isnull=False),
                name="budget_one_owner",
            ),
            models.UniqueConstraint(
                fields=["project", "currency"],
                condition=Q(project__isnull=False, removed_at__isnull=True),
                name="budget_project_currency_unique",
            ),
            models.UniqueConstraint(
                fields=["api_key", "currency"],
                condition=Q(api_key__isnull=False, removed_at__isnull=True),
                name="budget_key_currency_unique",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="budget_amount_non_negative"),
        ]

    def __str__(self) -> str:
        owner = f"key {self.api_key_id}" if self.api_key_id else f"project {self.project_id}"
        return f"{owner}: {self.amount} {self.currency}/{self.period}"


class BudgetCounter(models.Model):
    """Spend and reservations of one budget in one period; changed only by guarded UPDATEs."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="counters")
    period_start = models.DateField()  # 1970-01-01 for `total`
    reserved = MoneyField()
    spent = MoneyField()
    alerted_at = models.DateTimeField(null=True, blank=True)  # soft threshold, once per period

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start"], name="budget_counter_unique"
            ),
            models.CheckConstraint(
                condition=Q(reserved__gte=0) & Q(spent__gte=0), name="budget_counter_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"budget {self.budget_id} from {self.period_start}"


class Hold(models.Model):
    """A two-phase reservation on a wallet and its budgets. Resolves exactly once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="holds")
    wallet = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    amount = MoneyField()
    status = models.CharField(max_length=10, choices=HoldStatus.choices, default=HoldStatus.PENDING)
    captured_amount = MoneyField(null=True, blank=True)
    # The counters reserved against, so a capture after midnight lands in the reserved period.
    project_counter = models.ForeignKey(
        BudgetCounter, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    key_counter = models.ForeignKey(
        BudgetCounter, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    run_counter = models.ForeignKey(  # an AI Researcher step: its run's budget
        BudgetCounter, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(db_default=Now())
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Write-ahead of a charge (docs/billing.md, "durably"): set while a stream delivers, to the
    # cost and usage record of what has reached the client so far. The expiry sweep captures
    # a hold that has one (a crashed worker's answered stream) instead of voiding it.
    settle_cost = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True
    )
    settle_usage = models.JSONField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="pending"), name="hold_pending_expiry_idx"
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="hold_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(captured_amount__isnull=True) | Q(captured_amount__lte=F("amount")),
                name="hold_capture_at_most_held",
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.pk} {self.amount} ({self.status})"


class FlushMark(models.Model):
    """One row per PostgreSQL backend, bumped by the gateway's flush barrier (routing/db.py):
    a transaction must write WAL for its synchronous commit to flush the log, and each
    connection touching only its own row means barriers of different workers never wait on
    each other's row locks."""

    backend_pid = models.IntegerField(primary_key=True)
    flushes = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"flush mark of backend {self.backend_pid}"


class UsageKind(models.TextChoices):
    API = "api", "API"
    RESEARCHER = "researcher", "Researcher"


class UsageStatus(models.TextChoices):
    SETTLED = "settled", "Settled"  # hold captured, transaction posted
    FAILED = "failed", "Failed"  # hold voided, nothing charged


class UsageRecord(models.Model):
    """One proxied request or researcher step: who, what was asked, which path ran, what it cost.

    Written once, when the request ends, in the same DB transaction as its settlement.
    Prices are a snapshot, so later price changes never rewrite history.
    """

    request_id = models.CharField(max_length=64, unique=True)
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="usage_records")
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.PROTECT, related_name="usage_records"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="usage_records"
    )
    kind = models.CharField(max_length=12, choices=UsageKind.choices, default=UsageKind.API)
    researcher_run_id = models.UUIDField(null=True, blank=True, db_index=True)
    endpoint = models.CharField(max_length=40, default="chat.completions")
    model = models.CharField(max_length=120)  # the public name the client asked for
    upstream = models.CharField(max_length=120, blank=True)  # the route that ran (empty: none did)
    upstream_model = models.CharField(max_length=120, blank=True)
    attempts = models.JSONField(default=list)  # [{upstream, model, status, error, latency_ms}]
    fallback = models.BooleanField(default=False)  # a retry or fallback changed the path
    wallet = models.CharField(max_length=8, choices=Currency.choices, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    estimated = models.BooleanField(default=False)  # usage estimated from text, not reported
    # Every further token class the upstream reported (prompt_tokens counts all input,
    # cached_tokens the cache reads among it, completion_tokens all output).
    cache_write_tokens = models.PositiveIntegerField(
        db_default=0, default=0
    )  # 5-minute cache writes
    cache_write_1h_tokens = models.PositiveIntegerField(db_default=0, default=0)
    reasoning_tokens = models.PositiveIntegerField(
        db_default=0, default=0
    )  # part of completion_tokens
    input_audio_tokens = models.PositiveIntegerField(db_default=0, default=0)
    output_audio_tokens = models.PositiveIntegerField(db_default=0, default=0)
    # Snapshot of every price part used ({part: per-1M string}, "defaulted": [parts], "tier").
    price_parts = models.JSONField(db_default=Value({}, JSONField()), default=dict, blank=True)
    # What the upstream said the request cost, when it says (usage.cost or a cost header).
    reported_cost = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True
    )
    # What the request would have cost on the model's first official (Credit) route.
    baseline_cost = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True
    )
    baseline_wallet = models.CharField(
        max_length=8, choices=Currency.choices, blank=True, db_default="", default=""
    )
    # Request fields or tools an upstream could not take and were left out.
    dropped = models.JSONField(db_default=Value([], JSONField()), default=list, blank=True)
    # Routes passed over before the one that ran, and why: [{upstream, wallet, reason}].
    skipped = models.JSONField(db_default=Value([], JSONField()), default=list, blank=True)
    # Anything the gateway corrected or distrusted (e.g. impossible usage clamped).
    anomalies = models.JSONField(db_default=Value([], JSONField()), default=list, blank=True)
    # Per 1M tokens, in the wallet's currency, before the multiplier.
    price_input = MoneyField()
    price_output = MoneyField()
    price_cached_input = MoneyField()
    price_multiplier = models.DecimalField(max_digits=8, decimal_places=4, default="1")
    cost = MoneyField()
    status = models.CharField(max_length=10, choices=UsageStatus.choices)
    error = models.TextField(blank=True)
    stream = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(default=0)
    hold = models.OneToOneField(
        Hold, null=True, blank=True, on_delete=models.PROTECT, related_name="usage"
    )
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="usage"
    )
    created_at = models.DateTimeField(db_default=Now())

    objects = TenantManager()

    class Meta:
        indexes = [
            models.Index(fields=["org", "-created_at"]),
            models.Index(fields=["org", "kind", "created_at"]),
            models.Index(fields=["api_key", "created_at"]),
            models.Index(fields=["project", "created_at"]),
            # Operator and dashboard breakdowns by model and by the route that ran.
            models.Index(fields=["org", "model", "created_at"], name="usage_org_model_created_idx"),
            models.Index(
                fields=["org", "upstream", "created_at"], name="usage_org_upstream_created_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.request_id


class BudgetAlert(models.Model):
    """The soft threshold was crossed; recorded once per budget and period."""

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="budget_alerts")
    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="alerts")
    period_start = models.DateField()
    threshold = models.DecimalField(max_digits=5, decimal_places=4)
    spent = MoneyField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start"], name="budget_alert_once_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"alert budget {self.budget_id} {self.period_start}"


class TopUpProvider(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    TEST = "test", "Test provider"
    REDEMPTION = "redemption", "Redemption code"
    OPERATOR = "operator", "Operator"


class TopUpStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"  # the payer cancelled before paying; never credited


class TopUp(models.Model):
    """A request to add money; the credit itself is a ledger Transaction (unique reference)."""

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="topups")
    currency = models.CharField(max_length=8, choices=Currency.choices)
    amount = MoneyField()
    provider = models.CharField(max_length=12, choices=TopUpProvider.choices)
    status = models.CharField(
        max_length=10, choices=TopUpStatus.choices, default=TopUpStatus.PENDING
    )
    external_id = models.CharField(
        max_length=200, unique=True, null=True, blank=True
    )  # e.g. Checkout Session id
    # Stripe's PaymentIntent of the paid session: how refunds and disputes find the top-up.
    payment_intent = models.CharField(max_length=200, blank=True, db_index=True)
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="topup"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    def __str__(self) -> str:
        return f"{self.provider} {self.amount} {self.currency} ({self.status})"


class ReversalKind(models.TextChoices):
    REFUND = "refund", "Refund"
    DISPUTE = "dispute", "Dispute"


class ReversalStatus(models.TextChoices):
    REFUNDED = "refunded", "Refunded"
    OPEN = "open", "Dispute open (funds withdrawn)"
    INQUIRY = "inquiry", "Inquiry (no funds withdrawn)"
    WON = "won", "Dispute won (funds reinstated)"
    LOST = "lost", "Dispute lost"
    CLOSED = "closed", "Inquiry closed"


class PaymentReversal(models.Model):
    """A Stripe refund (one row per charge; `amount` is Stripe's running total) or dispute
    (one row per dispute) of a card top-up. The money moved in `chargeback` transactions
    (references `stripe-refund:CHARGE:CENTS`, `stripe-dispute:ID`, `stripe-dispute-won:ID`):
    out of the wallet down to zero, the rest to the receivable account."""

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    topup = models.ForeignKey(TopUp, on_delete=models.PROTECT, related_name="reversals")
    kind = models.CharField(max_length=10, choices=ReversalKind.choices)
    external_id = models.CharField(max_length=200)  # charge id (refund) or dispute id
    charge_id = models.CharField(max_length=200, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=ReversalStatus.choices)
    currency = models.CharField(max_length=8, choices=Currency.choices)
    amount = MoneyField()  # what Stripe reports refunded or disputed (running total)
    from_wallet = MoneyField()  # taken from the wallet so far (net of reinstatements)
    to_receivable = MoneyField()  # booked as owed by the customer (net of reinstatements)
    reason = models.CharField(max_length=100, blank=True)  # Stripe's dispute reason
    last_event_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "external_id"], name="reversal_once")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.external_id} ({self.status})"


class WebhookEvent(models.Model):
    """Every provider event id we processed; the unique insert is the idempotency claim."""

    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once")
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id}"


class RedemptionBatch(models.Model):
    name = models.CharField(max_length=120)
    currency = models.CharField(max_length=8, choices=Currency.choices)
    amount = MoneyField()
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "redemption batches"

    def __str__(self) -> str:
        return f"{self.name} ({self.count} × {self.amount} {self.currency})"


class RedemptionCode(models.Model):
    """A bearer code for money: stored hashed, shown once at generation."""

    batch = models.ForeignKey(RedemptionBatch, on_delete=models.PROTECT, related_name="codes")
    code_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    redeemed_by_org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    redeemed_at = models.DateTimeField(null=True, blank=True)
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="redemption"
    )

    def __str__(self) -> str:
        return f"{self.prefix}…"


class WalletWatch(models.Model):
    """What the owner set for one wallet: a low-balance alert (email and an optional signed
    webhook) and, for Credit, auto top-up by a saved card. Checked by the beat sweep
    (`ledger.tasks.wallets_watch`); the alert fires once per crossing and re-arms above it."""

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="wallet_watches")
    currency = models.CharField(max_length=8, choices=Currency.choices)
    alert_threshold = MoneyField(null=True, blank=True, default=None)  # None: no alert
    alert_email = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True, default="")
    webhook_secret = models.CharField(max_length=64, blank=True, default="")
    alerted_at = models.DateTimeField(null=True, blank=True)  # set when fired; cleared above
    auto_topup_enabled = models.BooleanField(default=False)  # Credit only
    auto_topup_threshold = MoneyField(null=True, blank=True, default=None)
    auto_topup_amount = MoneyField(null=True, blank=True, default=None)
    stripe_customer_id = models.CharField(max_length=120, blank=True, default="")
    auto_topup_last_at = models.DateTimeField(null=True, blank=True)
    auto_topup_last_error = models.CharField(max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "currency"], name="wallet_watch_one_per_wallet")
        ]

    def __str__(self) -> str:
        return f"watch {self.org_id} {self.currency}"
