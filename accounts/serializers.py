from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiToken
from accounts.tokens import MAX_TTL_DAYS


class TokenObtainSerializer(serializers.Serializer):
    username = serializers.CharField(help_text="Your email address.")
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    name = serializers.CharField(required=False, allow_blank=True, max_length=120)
    expires_in_days = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_TTL_DAYS, help_text="Default: 90."
    )


class ApiTokenSerializer(serializers.ModelSerializer):
    revoked_reason = serializers.CharField(
        read_only=True,
        help_text="Empty while live; else user, operator, password_change or password_reset.",
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "revoked_reason",
        ]
        read_only_fields = fields


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="The token itself: shown this once, never again.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields
