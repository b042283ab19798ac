"""Management API of the routing app: the cost estimator."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from projects.api import OrgScopedMixin
from routing.selectors_estimate import estimate_routes

MAX_TOKENS = 100_000_000
MAX_REQUESTS_PER_DAY = 1_000_000_000


class EstimateRequestSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=120)
    requests_per_day = serializers.IntegerField(min_value=0, max_value=MAX_REQUESTS_PER_DAY)
    input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS)
    output_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS)
    cached_input_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_TOKENS, required=False, default=0
    )

    def validate(self, attrs):
        if attrs["cached_input_tokens"] > attrs["input_tokens"]:
            raise serializers.ValidationError(
                {"cached_input_tokens": "Cannot be more than input_tokens (it is a part of it)."}
            )
        return attrs


class EstimateOptionSerializer(serializers.Serializer):
    upstream = serializers.CharField()
    upstream_model = serializers.CharField()
    wallet = serializers.CharField()
    per_request = serializers.DecimalField(max_digits=28, decimal_places=10)
    per_day = serializers.DecimalField(max_digits=28, decimal_places=10)
    per_month = serializers.DecimalField(max_digits=28, decimal_places=10)
    first_choice = serializers.BooleanField()


class EstimateSerializer(serializers.Serializer):
    model = serializers.CharField()
    options = EstimateOptionSerializer(many=True)


class EstimateView(OrgScopedMixin, APIView):
    """What a traffic shape would cost on every route of a model, cheapest first, in each
    route's wallet currency after your organization's price multiplier."""

    @extend_schema(request=EstimateRequestSerializer, responses=EstimateSerializer)
    def post(self, request):
        form = EstimateRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        options = estimate_routes(org=self.org, **form.validated_data)
        if options is None:
            raise ValidationError({"model": f"No model named {form.validated_data['model']!r}."})
        return Response(
            EstimateSerializer({"model": form.validated_data["model"], "options": options}).data
        )
