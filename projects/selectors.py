"""Reads of projects and keys, always scoped to one organization."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from accounts.models import Organization
from projects.models import ApiKey, Project


def projects_list(*, org: Organization, include_archived: bool = False) -> QuerySet:
    qs = Project.objects.for_org(org).annotate(
        active_keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True))
    )
    if not include_archived:
        qs = qs.filter(archived_at__isnull=True)
    return qs.order_by("archived_at", "name")


def project_get(*, org: Organization, pk: int) -> Project | None:
    return Project.objects.for_org(org).filter(pk=pk).first()


def keys_list(
    *, org: Organization, project_id: int | None = None, include_revoked: bool = True
) -> QuerySet:
    qs = ApiKey.objects.for_org(org).select_related("project")
    if project_id is not None:
        qs = qs.filter(project_id=project_id)
    if not include_revoked:
        qs = qs.filter(revoked_at__isnull=True)
    return qs.order_by("revoked_at", "-created_at")


def key_get(*, org: Organization, pk: int) -> ApiKey | None:
    return ApiKey.objects.for_org(org).select_related("project").filter(pk=pk).first()
