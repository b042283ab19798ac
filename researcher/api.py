"""Management API (/api/research/runs/): list, create, detail and cancel runs of your
organization, on the same services as the dashboard and /v1/."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts.models import Role
from config.pagination import BoundedLimitOffsetPagination
from projects.api import OrgScopedMixin, int_param
from projects.selectors import project_get
from researcher import selectors
from researcher.models import RunStatus
from researcher.serializers import (
    RunCreatedSerializer,
    RunCreateSerializer,
    RunSerializer,
)
from researcher.services import RunBudgetTooSmall, RunInputError, run_cancel, run_create


class ResearchRunViewSet(OrgScopedMixin, viewsets.ViewSet):
    """AI Researcher runs. Members and above start and cancel them; viewers read."""

    action_roles = {"create": Role.MEMBER, "cancel": Role.MEMBER}
    pagination_class = BoundedLimitOffsetPagination
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def _run(self, pk):
        run = selectors.run_get(org_id=self.org.pk, run_id=pk)
        if run is None:
            raise NotFound("No such run in your organization.")
        return run

    @extend_schema(
        parameters=[
            OpenApiParameter("project", int, description="Only this project's runs."),
            OpenApiParameter("status", str, enum=RunStatus.values),
        ],
        responses=RunSerializer(many=True),
    )
    def list(self, request):
        qs = selectors.runs_for_org(org_id=self.org.pk, project_id=int_param(request, "project"))
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in RunStatus.values:
                raise ValidationError({"status": f"One of {', '.join(RunStatus.values)}."})
            qs = qs.filter(status=wanted)
        page = self.paginator.paginate_queryset(qs, request, view=self)
        data = [selectors.run_as_dict(r, steps=False, detail=False) for r in page]
        return self.paginator.get_paginated_response(data)

    @property
    def paginator(self):
        if not hasattr(self, "_paginator"):
            self._paginator = self.pagination_class()
        return self._paginator

    @extend_schema(request=RunCreateSerializer, responses={202: RunCreatedSerializer})
    def create(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        project_id = data.get("project")
        if not isinstance(project_id, int) or isinstance(project_id, bool):
            raise ValidationError({"project": "The id of one of your projects."})
        project = project_get(org=self.org, pk=project_id)
        if project is None:
            raise ValidationError({"project": "No such project in your organization."})
        try:
            run, estimate = run_create(
                org_id=self.org.pk, project_id=project.pk, data=data, user=request.user
            )
        except RunBudgetTooSmall as exc:
            return Response(
                {"detail": exc.message, "code": exc.code, "estimate": exc.estimate.as_dict()},
                status=status.HTTP_402_PAYMENT_REQUIRED,
            )
        except RunInputError as exc:
            if exc.status >= 500:
                return Response({"detail": exc.message, "code": exc.code}, status=exc.status)
            raise ValidationError({exc.param or "non_field_errors": exc.message}) from None
        return Response(
            {"id": str(run.pk), "status": run.status, "estimate": estimate.as_dict()},
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(responses=RunSerializer)
    def retrieve(self, request, pk=None):
        return Response(selectors.run_as_dict(self._run(pk)))

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(selectors.run_as_dict(run_cancel(run=self._run(pk), actor=request.user)))
