"""AI Researcher runs and their steps.

A run is a chain of model calls (plan, analyse, challenge, report) through the routing engine
in process; each step is one request with its own usage record (kind `researcher`, the run's
id). The run's budget is a ledger `Budget` scoped to the run (`researcher_run_id`), so every
step's hold reserves against it atomically with the wallet and the project/key budgets.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import Organization
from accounts.tenancy import TenantManager
from ledger.money import Currency, MoneyField
from projects.models import ApiKey, Project


class Depth(models.TextChoices):
    QUICK = "quick", "Quick"
    STANDARD = "standard", "Standard"
    DEEP = "deep", "Deep"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    STOPPED_BUDGET = "stopped_budget", "Stopped at budget"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class ResearchRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="research_runs")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="research_runs")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="research_runs",
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="research_runs"
    )
    question = models.TextField()
    tickers = models.JSONField(default=list)
    prices = models.JSONField(default=dict, blank=True)  # {ticker: [[date, o, h, l, c, v], ...]}
    figures = models.JSONField(default=dict, blank=True)  # {ticker: {name: value}} from code
    depth = models.CharField(max_length=10, choices=Depth.choices, default=Depth.STANDARD)
    model = models.CharField(max_length=120)
    budget_currency = models.CharField(max_length=8, choices=Currency.choices)
    budget_amount = MoneyField()
    estimate_min = MoneyField()
    estimate_max = MoneyField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    spent = MoneyField()  # the sum of its steps' charges (kept equal by the step's settlement)
    report = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # The worker executing the run holds a lease; another takes over only after it lapsed.
    lease_until = models.DateTimeField(null=True, blank=True)
    executions = models.PositiveIntegerField(default=0)  # how many times a worker took it
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "project", "-created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(budget_amount__gte=0) & Q(spent__gte=0),
                name="research_run_money_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def started_by_label(self) -> str:
        if self.api_key_id:
            return f"key {self.api_key.prefix}…" if self.api_key else "API key"
        return self.started_by.email if self.started_by else ""


class StepStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost (worker stopped)"


class ResearchStep(models.Model):
    """One model call of a run; `request_id` is its usage record's (and /v1/generation's) id."""

    run = models.ForeignKey(ResearchRun, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()  # position in the depth's plan (0-based)
    attempt = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=20)
    request_id = models.CharField(max_length=64, unique=True)
    model = models.CharField(max_length=120)
    route = models.CharField(max_length=250, blank=True)
    wallet = models.CharField(max_length=8, blank=True)
    paid_by = models.CharField(max_length=16, blank=True)  # which account paid: "wallet"
    max_tokens = models.PositiveIntegerField(default=0)
    cost = MoneyField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=StepStatus.choices, default=StepStatus.RUNNING)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["index", "attempt"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "index", "attempt"], name="research_step_attempt_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.index}.{self.attempt} ({self.status})"
