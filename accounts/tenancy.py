"""The one scoping helper: every tenant-owned model's manager gets `for_org(org)`.

Views never filter by organization by hand; they go through `Model.objects.for_org(org)`
(or a selector built on it), so forgetting the filter is not possible by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from accounts.models import Organization


class TenantQuerySet(models.QuerySet):
    def for_org(self, org: Organization | int) -> TenantQuerySet:
        org_id = org if isinstance(org, int) else org.pk
        return self.filter(org_id=org_id)


TenantManager = models.Manager.from_queryset(TenantQuerySet)
