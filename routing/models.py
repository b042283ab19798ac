"""Upstreams (where requests go), public models (what clients ask for) and the routes
between them, with prices per 1M tokens in the upstream's wallet currency."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from accounts.tenancy import TenantManager
from ledger.money import Currency, MoneyField
from routing.crypto import secret_decrypt, secret_encrypt


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible relay"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Gemini"
    DEMO = "demo", "Built-in demo (answers locally)"


class Upstream(models.Model):
    name = models.CharField(max_length=120, unique=True)
    provider = models.CharField(max_length=20, choices=ProviderKind.choices)
    # As the provider's official SDK takes it: ".../v1" for OpenAI-format, bare host otherwise.
    base_url = models.CharField(max_length=500, blank=True)
    # Fernet token (routing.crypto); never displayed, never logged.
    api_key_encrypted = models.TextField(blank=True, editable=False)
    # Which of the organization's wallets pays for this upstream's traffic.
    wallet = models.CharField(max_length=8, choices=Currency.choices, default=Currency.CREDIT)
    timeout = models.PositiveIntegerField(default=60)  # seconds
    # Serves OpenAI's /v1/responses natively (provider `openai` only): /v1/responses requests
    # are forwarded as they are instead of translated to chat completions.
    responses = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # Set when the gateway disabled it (auth or quota error) or an operator did.
    disabled_reason = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def api_key(self) -> str:
        return secret_decrypt(self.api_key_encrypted)

    def set_api_key(self, plain: str) -> None:
        self.api_key_encrypted = secret_encrypt(plain)


class Model(models.Model):
    """The public model name clients send in `model`."""

    name = models.CharField(max_length=120, unique=True)
    enabled = models.BooleanField(default=True)
    # Upper bound of completion tokens used to size holds when a request sets no max_tokens.
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Input plus output tokens the model accepts (shown on the Models page; informational).
    context_window = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Route(models.Model):
    """One way to serve a Model. Lower `position` is tried first; `weight` balances load
    among enabled routes of equal position. Prices are in the upstream's wallet currency."""

    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="routes")
    upstream = models.ForeignKey(Upstream, on_delete=models.PROTECT, related_name="routes")
    upstream_model = models.CharField(max_length=120)
    position = models.PositiveIntegerField(default=0)
    weight = models.PositiveIntegerField(default=1)
    price_input = MoneyField()  # per 1M prompt tokens
    price_output = MoneyField()  # per 1M completion tokens
    # Further price parts per 1M tokens; null = the provider's published rule (routing/pricing.py
    # prices_build: e.g. Anthropic cache read 0.1×, 5-minute write 1.25×, 1-hour write 2× input).
    price_cached_input = MoneyField(null=True, blank=True, default=None)  # cache reads
    price_cache_write = MoneyField(null=True, blank=True, default=None)  # 5-minute cache writes
    price_cache_write_1h = MoneyField(null=True, blank=True, default=None)
    price_reasoning = MoneyField(null=True, blank=True, default=None)
    price_input_audio = MoneyField(null=True, blank=True, default=None)
    price_output_audio = MoneyField(null=True, blank=True, default=None)
    price_per_request = MoneyField(null=True, blank=True, default=None)  # flat, per request
    # Long-context prices: [{"above_input_tokens": 200000, "input": "6", ...}], parts as strings.
    price_tiers = models.JSONField(default=list, blank=True)
    # The parts `import_prices` last wrote; every other set part was set by hand and the catalog
    # only overwrites it with --force.
    price_catalog_parts = models.JSONField(default=list, blank=True)
    # From the price catalog: the upstream refuses a longer prompt, so holds never count more.
    context_window = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "upstream", "upstream_model"], name="route_unique_target"
            ),
            models.CheckConstraint(
                condition=Q(price_input__gte=0)
                & Q(price_output__gte=0)
                & (Q(price_cached_input__isnull=True) | Q(price_cached_input__gte=0)),
                name="route_prices_non_negative",
            ),
            models.CheckConstraint(
                condition=(Q(price_cache_write__isnull=True) | Q(price_cache_write__gte=0))
                & (Q(price_cache_write_1h__isnull=True) | Q(price_cache_write_1h__gte=0))
                & (Q(price_reasoning__isnull=True) | Q(price_reasoning__gte=0))
                & (Q(price_input_audio__isnull=True) | Q(price_input_audio__gte=0))
                & (Q(price_output_audio__isnull=True) | Q(price_output_audio__gte=0))
                & (Q(price_per_request__isnull=True) | Q(price_per_request__gte=0)),
                name="route_price_parts_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} → {self.upstream.name}/{self.upstream_model}"


class StoredResponse(models.Model):
    """A `/v1/responses` answer kept for `GET /v1/responses/{id}`, its input items and
    `previous_response_id` (which replays `context_items` + the output on any upstream).
    Only written when the request says `store` (the default); purged after
    RESPONSES_RETENTION_DAYS by `routing.tasks.responses_purge`."""

    id = models.CharField(primary_key=True, max_length=64)  # "resp_" + 32 hex
    org = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="stored_responses"
    )
    api_key = models.ForeignKey(
        "projects.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=120)
    status = models.CharField(max_length=20)
    previous_response_id = models.CharField(max_length=64, blank=True)
    input_items = models.JSONField(default=list)  # this request's own input, with ids
    # Everything the model saw before its output: the replayed chain plus input_items.
    context_items = models.JSONField(default=list)
    response = models.JSONField(default=dict)  # the response object as the client got it
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TenantManager()

    class Meta:
        indexes = [models.Index(fields=["org", "-created_at"])]

    def __str__(self) -> str:
        return self.id
