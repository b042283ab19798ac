"""/v1/research/runs: the AI Researcher for apps, with the same key auth as /v1/.

Errors are OpenAI-shaped (routing.errors); another organization's (or project's) run is a 404.
"""

from __future__ import annotations

from researcher import selectors
from researcher.services import RunBudgetTooSmall, RunInputError, run_cancel, run_create
from routing.auth import KeyContext, authenticate
from routing.db import db_call
from routing.errors import GatewayError
from routing.validation import body_parse
from routing.views import GatewayView, json_response

PAGE_DEFAULT, PAGE_MAX = 20, 100


def _error(exc: RunInputError) -> GatewayError:
    if isinstance(exc, RunBudgetTooSmall):
        err = GatewayError(402, exc.message, type="billing_error", code=exc.code, param=exc.param)
        return err
    kind = "api_error" if exc.status >= 500 else "invalid_request_error"
    return GatewayError(exc.status, exc.message, type=kind, code=exc.code, param=exc.param)


def _not_found(run_id) -> GatewayError:
    return GatewayError(404, f"No research run with id '{run_id}'.", param="id", code="not_found")


def _create(*, ctx: KeyContext, data: dict) -> dict:
    try:
        run, estimate = run_create(
            org_id=ctx.org_id, project_id=ctx.project_id, data=data, api_key_id=ctx.api_key_id
        )
    except RunInputError as exc:
        raise _error(exc) from None
    return {
        "id": str(run.pk),
        "object": "research.run",
        "status": run.status,
        "estimate": estimate.as_dict(),
    }


def _list(*, ctx: KeyContext, limit: int, after: str | None) -> dict:
    qs = selectors.runs_for_org(org_id=ctx.org_id, project_id=ctx.project_id)
    if after:
        anchor = selectors.run_get(org_id=ctx.org_id, run_id=after, project_id=ctx.project_id)
        if anchor is None:
            raise GatewayError(400, f"Unknown cursor 'after={after}'.", param="after")
        qs = qs.filter(created_at__lte=anchor.created_at).exclude(pk=anchor.pk)
        qs = qs.exclude(created_at=anchor.created_at, pk__gt=anchor.pk)
    rows = list(qs[: limit + 1])
    data = [selectors.run_as_dict(r, steps=False, detail=False) for r in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "has_more": len(rows) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def _detail(*, ctx: KeyContext, run_id: str) -> dict | None:
    run = selectors.run_get(org_id=ctx.org_id, run_id=run_id, project_id=ctx.project_id)
    return None if run is None else selectors.run_as_dict(run)


def _cancel(*, ctx: KeyContext, run_id: str) -> dict | None:
    run = selectors.run_get(org_id=ctx.org_id, run_id=run_id, project_id=ctx.project_id)
    if run is None:
        return None
    if run.api_key_id != ctx.api_key_id:
        raise GatewayError(
            403,
            "Only the key that started this run (or a member, in the dashboard) can cancel it.",
            type="permission_error",
            code="not_run_starter",
        )
    return selectors.run_as_dict(run_cancel(run=run))


class RunsView(GatewayView):
    async def post(self, request):
        data = body_parse(request)
        ctx = await authenticate(request)
        return json_response(await db_call(_create, ctx=ctx, data=data), status=202)

    async def get(self, request):
        ctx = await authenticate(request)
        raw = request.GET.get("limit") or str(PAGE_DEFAULT)
        if not raw.isdigit() or not 1 <= int(raw) <= PAGE_MAX:
            raise GatewayError(
                400, f"'limit' must be an integer from 1 to {PAGE_MAX}.", param="limit"
            )
        after = request.GET.get("after") or None
        return json_response(await db_call(_list, ctx=ctx, limit=int(raw), after=after))


class RunView(GatewayView):
    async def get(self, request, run_id: str):
        ctx = await authenticate(request)
        data = await db_call(_detail, ctx=ctx, run_id=run_id)
        if data is None:
            raise _not_found(run_id)
        return json_response(data)


class RunCancelView(GatewayView):
    async def post(self, request, run_id: str):
        ctx = await authenticate(request)
        data = await db_call(_cancel, ctx=ctx, run_id=run_id)
        if data is None:
            raise _not_found(run_id)
        return json_response(data)
