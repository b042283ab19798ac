"""Management API serializers for projects and keys: shape and validation only; writes go
through `projects.services`."""

from __future__ import annotations

import ipaddress

from rest_framework import serializers

from projects.models import ApiKey, Environment, Project

WALLETS = ("CREDIT", "RMB")  # ledger.money.Currency values; projects sits below ledger


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "environment", "created_at", "archived_at"]
        read_only_fields = ["id", "created_at", "archived_at"]


class ProjectWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    environment = serializers.ChoiceField(choices=Environment.choices, required=False)


class ApiKeySerializer(serializers.ModelSerializer):
    project = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "project",
            "name",
            "prefix",
            "allowed_models",
            "allowed_wallets",
            "ip_allowlist",
            "rpm_limit",
            "tpm_limit",
            "max_concurrent_streams",
            "expires_at",
            "revoked_at",
            "created_at",
        ]
        read_only_fields = fields


class ApiKeyWriteSerializer(serializers.Serializer):
    """Settings of a key; `project` only on create (a key never moves between projects)."""

    project = serializers.IntegerField(required=False)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=120), required=False
    )
    allowed_wallets = serializers.ListField(
        child=serializers.ChoiceField(choices=WALLETS), required=False, max_length=2
    )
    ip_allowlist = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    rpm_limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    tpm_limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_concurrent_streams = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_allowed_wallets(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each wallet may appear once.")
        return value

    def validate_ip_allowlist(self, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise serializers.ValidationError(f"{entry!r} is not an address or range.") from exc
        return value


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="The full key, returned only once.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields
