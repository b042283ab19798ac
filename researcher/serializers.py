"""Management API shapes of runs (for the OpenAPI schema; the data is `run_as_dict`)."""

from __future__ import annotations

from rest_framework import serializers

from ledger.money import Currency
from researcher.models import Depth, RunStatus


class RunBudgetInSerializer(serializers.Serializer):
    currency = serializers.ChoiceField(choices=Currency.choices)
    amount = serializers.CharField(help_text="A decimal string, greater than zero.")


class RunCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField(help_text="The project the run belongs to.")
    question = serializers.CharField()
    tickers = serializers.ListField(child=serializers.CharField(), min_length=1)
    depth = serializers.ChoiceField(choices=Depth.choices, required=False)
    model = serializers.CharField(required=False, help_text="Default: RESEARCHER_DEFAULT_MODEL.")
    budget = RunBudgetInSerializer()
    prices = serializers.CharField(
        required=False, allow_blank=True, help_text="CSV: date,open,high,low,close,volume"
    )


class RunEstimateSerializer(serializers.Serializer):
    currency = serializers.CharField()
    min = serializers.CharField()
    max = serializers.CharField()


class RunCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    estimate = RunEstimateSerializer()


class RunStepSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    name = serializers.CharField()
    attempt = serializers.IntegerField()
    model = serializers.CharField()
    route = serializers.CharField()
    wallet = serializers.CharField()
    paid_by = serializers.CharField()
    cost = serializers.CharField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    max_tokens = serializers.IntegerField()
    latency_ms = serializers.IntegerField()
    status = serializers.CharField()
    error = serializers.CharField()


class RunBudgetSerializer(serializers.Serializer):
    currency = serializers.CharField()
    amount = serializers.CharField()


class RunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    question = serializers.CharField()
    tickers = serializers.ListField(child=serializers.CharField())
    depth = serializers.ChoiceField(choices=Depth.choices)
    model = serializers.CharField()
    project = serializers.CharField()
    started_by = serializers.CharField()
    budget = RunBudgetSerializer()
    spent = serializers.CharField()
    estimate = RunEstimateSerializer()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    steps = RunStepSerializer(many=True, required=False)
    figures = serializers.DictField(required=False)
    report = serializers.CharField(required=False)
