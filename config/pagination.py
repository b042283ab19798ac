"""The management API's default pagination (a module of its own: DRF imports it while
`rest_framework.generics` is still loading, so it must not import views)."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """DRF's limit/offset with bounds: `?limit=` or `?offset=` beyond PostgreSQL's bigint
    was a 500 (found by schemathesis); a page holds at most 1000 rows."""

    max_limit = 1000
    max_offset = 10**15

    def get_offset(self, request):
        return min(super().get_offset(request), self.max_offset)
