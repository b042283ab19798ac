"""Management API for budgets, usage, the ledger (requests and transactions) and wallets.

Big tables (usage records, transactions) page with a cursor on `created_at`: no COUNT(*)
and no OFFSET over a million rows.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import django_filters
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from ledger.errors import InvalidAmount
from ledger.models import Transaction, UsageKind, UsageRecord
from ledger.selectors import budgets_status, wallet_balances
from ledger.selectors_dashboard import UsageFilter, budgets_active, usage_table
from ledger.selectors_forecast import DEFAULT_WINDOW_DAYS, MAX_WINDOW_DAYS, forecast_get
from ledger.serializers import (
    BudgetSerializer,
    BudgetStatusSerializer,
    BudgetWriteSerializer,
    ForecastSerializer,
    TransactionSerializer,
    UsageRecordSerializer,
    UsageRowSerializer,
    WalletSerializer,
)
from ledger.services.budgets import budget_remove, budget_set
from projects.api import OrgScopedMixin, OwnedFilterMixin
from projects.selectors import key_get, project_get

USAGE_GROUPS = ["key", "model", "route", "wallet", "project"]


class NewestFirstCursor(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class WalletViewSet(OrgScopedMixin, viewsets.ViewSet):
    """Both wallets of your organization: posted, held and available."""

    @extend_schema(responses=WalletSerializer(many=True))
    def list(self, request):
        return Response(WalletSerializer(wallet_balances(org_id=self.org.pk), many=True).data)


class BudgetViewSet(
    OwnedFilterMixin,
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Budgets on projects and keys. Admins and owners set and remove them. `?project=ID` or
    `?api_key=ID` not in your organization (or of none) is a 404."""

    serializer_class = BudgetSerializer
    action_roles = {"create": Role.ADMIN, "destroy": Role.ADMIN}
    filterset_fields = ["project", "api_key", "currency", "period"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return BudgetSerializer.Meta.model.objects.none()
        return budgets_active(org=self.org).order_by("id")

    @extend_schema(request=BudgetWriteSerializer, responses={201: BudgetSerializer})
    def create(self, request):
        data = BudgetWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        owner = {}
        if "project" in values:
            owner["project"] = project_get(org=self.org, pk=values.pop("project"))
        else:
            owner["api_key"] = key_get(org=self.org, pk=values.pop("api_key"))
        if None in owner.values():
            raise NotFound("No such project or key in your organization.")
        try:
            budget = budget_set(org=self.org, actor=request.user, **owner, **values)
        except (InvalidAmount, ValueError) as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response(BudgetSerializer(budget).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        budget = self.get_object()
        budget_remove(budget=budget, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BudgetStatusViewSet(OrgScopedMixin, viewsets.ViewSet):
    """Each budget of a project (and optionally a key) in its current period."""

    @extend_schema(
        parameters=[
            OpenApiParameter("project", OpenApiTypes.INT, required=True),
            OpenApiParameter("api_key", OpenApiTypes.INT),
        ],
        responses=BudgetStatusSerializer(many=True),
    )
    def list(self, request):
        project = project_get(org=self.org, pk=_required_int(request, "project"))
        if project is None:
            raise NotFound("No such project.")
        key_id = _optional_int(request, "api_key")
        if key_id is not None and key_get(org=self.org, pk=key_id) is None:
            raise NotFound("No such key.")
        rows = budgets_status(project_id=project.pk, api_key_id=key_id)
        return Response(BudgetStatusSerializer(rows, many=True).data)


def _optional_int(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit():
        raise ValidationError({name: "Must be a whole number."})
    return int(value)


def _required_int(request, name: str) -> int:
    value = _optional_int(request, name)
    if value is None:
        raise ValidationError({name: "This parameter is required."})
    return value


def _optional_date(request, name: str):
    from datetime import date

    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError({name: "Use YYYY-MM-DD."}) from exc


class UsageViewSet(OrgScopedMixin, viewsets.ViewSet):
    """Requests, tokens and cost grouped by key, model, route, wallet or project; API and
    Researcher traffic are separate rows (`kind`)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", OpenApiTypes.STR, enum=USAGE_GROUPS),
            OpenApiParameter("start", OpenApiTypes.DATE),
            OpenApiParameter("end", OpenApiTypes.DATE),
            OpenApiParameter("project", OpenApiTypes.INT),
            OpenApiParameter("kind", OpenApiTypes.STR, enum=UsageKind.values),
        ],
        responses=UsageRowSerializer(many=True),
    )
    def list(self, request):
        group_by = request.query_params.get("group_by", "model")
        if group_by not in USAGE_GROUPS:
            raise ValidationError({"group_by": f"One of {', '.join(USAGE_GROUPS)}."})
        kind = request.query_params.get("kind") or None
        if kind is not None and kind not in UsageKind.values:
            raise ValidationError({"kind": "api or researcher."})
        end = _optional_date(request, "end") or timezone.now().astimezone(UTC).date()
        start = _optional_date(request, "start") or end - timedelta(days=29)
        if start > end or (end - start).days > 366:
            raise ValidationError({"start": "start must be before end, at most a year apart."})
        project_id = _optional_int(request, "project")
        if project_id is not None and project_get(org=self.org, pk=project_id) is None:
            raise NotFound("No such project.")
        flt = UsageFilter(start=start, end=end, project_id=project_id, kind=kind)
        rows = usage_table(org=self.org, flt=flt, group_by=group_by)
        return Response(UsageRowSerializer(rows, many=True).data)


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """ISO 8601 accepts offsets up to ±23:59, PostgreSQL only ±15:59: compare in UTC, and
    refuse a time that has no UTC equivalent, so no offset or year ends in a 500."""

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError as exc:
                raise ValidationError({self.field_name: ["Date out of range."]}) from exc
        return super().filter(qs, value)


class UsageRecordFilter(django_filters.FilterSet):
    route = django_filters.CharFilter(field_name="upstream")
    start = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    end = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = UsageRecord
        fields = ["project", "api_key", "model", "wallet", "kind", "status", "researcher_run_id"]


class UsageRecordViewSet(
    OwnedFilterMixin,
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Every request (usage record), newest first; `request_id` opens one. `?project=ID` or
    `?api_key=ID` not in your organization (or of none) is a 404."""

    serializer_class = UsageRecordSerializer
    pagination_class = NewestFirstCursor
    filterset_class = UsageRecordFilter
    lookup_field = "request_id"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return UsageRecord.objects.none()
        return UsageRecord.objects.for_org(self.org)


class TransactionFilter(django_filters.FilterSet):
    start = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    end = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Transaction
        fields = ["kind"]


class TransactionViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Money movements with their postings, newest first."""

    serializer_class = TransactionSerializer
    pagination_class = NewestFirstCursor
    filterset_class = TransactionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Transaction.objects.none()
        return (
            Transaction.objects.for_org(self.org)
            .select_related("usage")
            .prefetch_related("postings__account")
        )


class _ForecastView(OrgScopedMixin, APIView):
    """Spend pace per wallet over the last `days` full days plus today, projected to the end
    of the day, week and month, and when each budget runs out at that pace."""

    def _scope(self, pk: int) -> dict:
        raise NotImplementedError

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "days",
                OpenApiTypes.INT,
                description=f"Full days in the window (default {DEFAULT_WINDOW_DAYS}).",
            )
        ],
        responses=ForecastSerializer,
    )
    def get(self, request, pk: int):
        days = _optional_int(request, "days")
        if days is not None and not 1 <= days <= MAX_WINDOW_DAYS:
            raise ValidationError({"days": f"Must be between 1 and {MAX_WINDOW_DAYS}."})
        forecast = forecast_get(org=self.org, days=days or DEFAULT_WINDOW_DAYS, **self._scope(pk))
        return Response(ForecastSerializer(forecast).data)


class ProjectForecastView(_ForecastView):
    def _scope(self, pk: int) -> dict:
        if project_get(org=self.org, pk=pk) is None:
            raise NotFound("No such project.")
        return {"project_id": pk}


class KeyForecastView(_ForecastView):
    def _scope(self, pk: int) -> dict:
        if key_get(org=self.org, pk=pk) is None:
            raise NotFound("No such key.")
        return {"api_key_id": pk}
