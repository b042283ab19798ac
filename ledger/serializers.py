"""Management API serializers for budgets, usage, the ledger and wallets. Money is a decimal
string (coerced), never a float."""

from __future__ import annotations

from rest_framework import serializers

from ledger.models import (
    Budget,
    Period,
    Posting,
    Transaction,
    UsageKind,
    UsageRecord,
)
from ledger.money import MONEY_DIGITS, MONEY_PLACES, Currency


def Money(**kwargs) -> serializers.DecimalField:  # noqa: N802 - reads like a field class
    return serializers.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, coerce_to_string=True, **kwargs
    )


class WalletSerializer(serializers.Serializer):
    currency = serializers.ChoiceField(choices=Currency.choices)
    posted = Money()
    held = Money()
    available = Money()


class BudgetSerializer(serializers.ModelSerializer):
    amount = Money()

    class Meta:
        model = Budget
        fields = [
            "id",
            "project",
            "api_key",
            "currency",
            "amount",
            "period",
            "soft_threshold",
            "created_at",
        ]
        read_only_fields = fields


class BudgetStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    scope = serializers.ChoiceField(choices=["project", "key"])
    currency = serializers.ChoiceField(choices=Currency.choices)
    period = serializers.ChoiceField(choices=Period.choices)
    period_start = serializers.DateField()
    limit = Money()
    spent = Money()
    held = Money()
    remaining = Money()


class BudgetWriteSerializer(serializers.Serializer):
    """Exactly one of `project` and `api_key`; setting a currency again changes that budget."""

    project = serializers.IntegerField(required=False)
    api_key = serializers.IntegerField(required=False)
    currency = serializers.ChoiceField(choices=Currency.choices)
    amount = serializers.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, min_value=0
    )
    period = serializers.ChoiceField(choices=Period.choices, default=Period.MONTH)
    soft_threshold = serializers.DecimalField(
        max_digits=5, decimal_places=4, min_value=0, max_value=1, required=False
    )

    def validate(self, attrs):
        if ("project" in attrs) == ("api_key" in attrs):
            raise serializers.ValidationError("Give exactly one of project and api_key.")
        return attrs


class UsageRowSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=UsageKind.choices)
    wallet = serializers.CharField(allow_blank=True)
    label = serializers.CharField(help_text="The group: model, key, route, wallet or project.")
    requests = serializers.IntegerField()
    failed = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = Money()


class UsageRecordSerializer(serializers.ModelSerializer):
    project = serializers.PrimaryKeyRelatedField(read_only=True)
    api_key = serializers.PrimaryKeyRelatedField(read_only=True)
    cost = Money()
    price_input = Money()
    price_output = Money()
    price_cached_input = Money()

    class Meta:
        model = UsageRecord
        fields = [
            "request_id",
            "created_at",
            "kind",
            "project",
            "api_key",
            "researcher_run_id",
            "endpoint",
            "model",
            "upstream",
            "upstream_model",
            "attempts",
            "fallback",
            "wallet",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
            "input_audio_tokens",
            "output_audio_tokens",
            "estimated",
            "price_input",
            "price_output",
            "price_cached_input",
            "price_multiplier",
            "cost",
            "status",
            "error",
            "stream",
            "latency_ms",
            "transaction",
        ]
        read_only_fields = fields


class PostingSerializer(serializers.ModelSerializer):
    account = serializers.SerializerMethodField()
    amount = Money()

    class Meta:
        model = Posting
        fields = ["id", "account", "currency", "amount"]
        read_only_fields = fields

    def get_account(self, posting: Posting) -> str:
        """ "wallet" for your wallets, else the system account's kind (e.g. usage_revenue)."""
        return posting.account.kind


class TransactionSerializer(serializers.ModelSerializer):
    postings = PostingSerializer(many=True, read_only=True)
    request_id = serializers.SerializerMethodField()

    class Meta:
        model = Transaction
        fields = [
            "id",
            "created_at",
            "kind",
            "reference",
            "reason",
            "corrects",
            "request_id",
            "postings",
        ]
        read_only_fields = fields

    def get_request_id(self, txn: Transaction) -> str | None:
        usage = getattr(txn, "usage", None)
        return usage.request_id if usage is not None else None


class ForecastBudgetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    period = serializers.CharField()
    limit = serializers.DecimalField(max_digits=28, decimal_places=10)
    spent = serializers.DecimalField(max_digits=28, decimal_places=10)
    remaining = serializers.DecimalField(max_digits=28, decimal_places=10)
    runs_out_at = serializers.DateTimeField(
        allow_null=True, help_text="When the budget runs out at this pace; null: not this period."
    )


class ForecastProjectedSerializer(serializers.Serializer):
    day = serializers.DecimalField(max_digits=28, decimal_places=10)
    week = serializers.DecimalField(max_digits=28, decimal_places=10)
    month = serializers.DecimalField(max_digits=28, decimal_places=10)


class ForecastWalletSerializer(serializers.Serializer):
    currency = serializers.CharField()
    spent = serializers.DecimalField(max_digits=28, decimal_places=10)
    daily_pace = serializers.DecimalField(max_digits=28, decimal_places=10)
    projected = ForecastProjectedSerializer()
    budgets = ForecastBudgetSerializer(many=True)


class ForecastSerializer(serializers.Serializer):
    window_days = serializers.IntegerField()
    wallets = ForecastWalletSerializer(many=True)
