"""Management API for projects and keys, and the organization scoping every API view shares.

Scoping happens once, in `OrgScopedMixin.initial`: the caller's membership (session or token
user; the session's current organization when there is one) becomes `self.org`, the action's
minimum role is checked, and every queryset is built with `for_org(self.org)`, so another
organization's object is simply not found (404).
"""

from __future__ import annotations

from django.utils.functional import cached_property
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts.middleware import SESSION_KEY
from accounts.models import Role
from accounts.selectors import membership_current
from projects import selectors, services
from projects.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeySerializer,
    ApiKeyWriteSerializer,
    ProjectSerializer,
    ProjectWriteSerializer,
)


class OrgScopedMixin:
    """Resolve the caller's organization and check the role the action needs.

    `action_roles` maps a viewset action to its minimum role; anything missing needs
    `default_role` (viewer: read).
    """

    default_role = Role.VIEWER
    action_roles: dict[str, str] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if getattr(self, "swagger_fake_view", False):
            return
        session = getattr(request._request, "session", None)
        org_id = session.get(SESSION_KEY) if session is not None else None
        membership = membership_current(user=request.user, org_id=org_id)
        if membership is None:
            raise PermissionDenied("You are not a member of any organization.")
        needed = self.action_roles.get(getattr(self, "action", None) or "", self.default_role)
        if not membership.has_role(needed):
            raise PermissionDenied(f"This needs the {needed} role or higher.")
        self.membership = membership

    @cached_property
    def org(self):
        return self.membership.org


def int_param(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit():
        raise ValidationError({name: "Must be a whole number."})
    return int(value)


class OwnedFilterMixin:
    """List filters that name an object (`?project=ID`, `?api_key=ID`) accept only objects of
    the caller's organization: another organization's id answers exactly like an id that
    does not exist, 404 `{"detail": "No such project."}`, so ids reveal nothing. Not a whole
    number: 400, the same for every id."""

    owned_filters: tuple[str, ...] = ("project", "api_key")

    def filter_queryset(self, queryset):
        for name in self.owned_filters:
            pk = int_param(self.request, name)
            if pk is None:
                continue
            getter = selectors.project_get if name == "project" else selectors.key_get
            if pk > MAX_ID or getter(org=self.org, pk=pk) is None:
                label = "project" if name == "project" else "key"
                raise NotFound(f"No such {label}.")
        return super().filter_queryset(queryset)


MAX_ID = 2**63 - 1  # bigint: a larger id cannot exist (and must not reach the database)


class ProjectViewSet(
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Projects of your organization. Members create; admins rename and archive."""

    serializer_class = ProjectSerializer
    action_roles = {
        "create": Role.MEMBER,
        "partial_update": Role.ADMIN,
        "archive": Role.ADMIN,
        "unarchive": Role.ADMIN,
    }
    filterset_fields = ["environment"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return selectors.Project.objects.none()
        include_archived = self.request.query_params.get("archived") in ("1", "true")
        return selectors.projects_list(org=self.org, include_archived=include_archived)

    def _object(self):
        project = selectors.project_get(org=self.org, pk=self.kwargs["pk"])
        if project is None:
            raise NotFound("No such project.")
        return project

    @extend_schema(request=ProjectWriteSerializer, responses={201: ProjectSerializer})
    def create(self, request):
        data = ProjectWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not data.validated_data.get("name"):
            raise ValidationError({"name": "This field is required."})
        try:
            project = services.project_create(
                org=self.org, actor=request.user, **data.validated_data
            )
        except ValueError as exc:
            raise ValidationError({"name": str(exc)}) from exc
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProjectWriteSerializer, responses=ProjectSerializer)
    def partial_update(self, request, pk=None):
        project = self._object()
        data = ProjectWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            project = services.project_update(
                project=project, actor=request.user, **data.validated_data
            )
        except ValueError as exc:
            raise ValidationError({"name": str(exc)}) from exc
        return Response(ProjectSerializer(project).data)

    @extend_schema(request=None, responses=ProjectSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Archive the project and revoke its keys."""
        project = services.project_archive(project=self._object(), actor=request.user)
        return Response(ProjectSerializer(project).data)

    @extend_schema(request=None, responses=ProjectSerializer)
    @action(detail=True, methods=["post"])
    def unarchive(self, request, pk=None):
        project = services.project_unarchive(project=self._object(), actor=request.user)
        return Response(ProjectSerializer(project).data)


class ApiKeyViewSet(
    OwnedFilterMixin,
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """API keys. Members create (the secret is in the create response only), edit and revoke.
    `?project=ID` of a project not in your organization (or of none) is a 404."""

    serializer_class = ApiKeySerializer
    action_roles = {"create": Role.MEMBER, "partial_update": Role.MEMBER, "revoke": Role.MEMBER}
    filterset_fields = ["project"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return selectors.ApiKey.objects.none()
        qs = selectors.keys_list(org=self.org)
        if self.request.query_params.get("active") in ("1", "true"):
            qs = qs.filter(revoked_at__isnull=True)
        return qs

    def _object(self):
        api_key = selectors.key_get(org=self.org, pk=self.kwargs["pk"])
        if api_key is None:
            raise NotFound("No such key.")
        return api_key

    @extend_schema(request=ApiKeyWriteSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request):
        data = ApiKeyWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        project_id = values.pop("project", None)
        project = selectors.project_get(org=self.org, pk=project_id) if project_id else None
        if project is None or project.archived_at is not None:
            raise ValidationError(
                {"project": "An active project of your organization is required."}
            )
        created = services.key_create(project=project, actor=request.user, **values)
        body = ApiKeySerializer(created.api_key).data
        body["secret"] = created.secret
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=ApiKeyWriteSerializer, responses=ApiKeySerializer)
    def partial_update(self, request, pk=None):
        api_key = self._object()
        if api_key.revoked_at is not None:
            raise ValidationError({"detail": "A revoked key cannot be changed."})
        data = ApiKeyWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "project" in values:
            raise ValidationError({"project": "A key cannot move to another project."})
        api_key = services.key_update(api_key=api_key, actor=request.user, **values)
        return Response(ApiKeySerializer(api_key).data)

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Revoke the key; the proxy refuses it from now on."""
        api_key = services.key_revoke(api_key=self._object(), actor=request.user)
        return Response(ApiKeySerializer(api_key).data)


def schema_management_only(endpoints):
    """drf-spectacular preprocessing hook: the schema documents the management API (/api/);
    the OpenAI-compatible proxy under /v1/ follows the providers' own specifications."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]


_ERROR_RESPONSES = {
    "400": "Invalid input: the body names each field and what is wrong with it.",
    "401": "Missing or invalid credentials (session or `Authorization: Token ...`).",
    "403": "Authenticated, but your role in the organization does not allow this.",
    "404": "No such object in your organization.",
}


def schema_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the error answers every operation can
    give (DRF's `{"detail": ...}` or per-field lists), so clients and schemathesis see them."""
    error = {
        "type": "object",
        "additionalProperties": True,
        "description": '`{"detail": "..."}` or `{"field": ["message", ...]}`',
    }
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, description in _ERROR_RESPONSES.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": error}},
                    },
                )
    return result
