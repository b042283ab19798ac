"""The ledger pages: every request and money movement (keyset-paginated), one request's story,
a transaction with its postings, the streamed CSV export, and "Why did my balance drop?"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, timedelta

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Q
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.csv_safe import csv_writer
from accounts.decorators import org_required
from ledger.cost_formula import breakdown_of_record
from ledger.models import TransactionKind, UsageKind, UsageStatus
from ledger.money import Currency
from ledger.selectors_dashboard import (
    LedgerFilter,
    balance_drop,
    keyset_page,
    postings_of,
    request_story,
    requests_filtered,
    transaction_of_org,
    transactions_filtered,
    usage_filter_choices,
)
from ledger.views.usage import parse_day, parse_int
from projects.selectors import keys_list, projects_list

# CSV header -> the usage-record field it is read from.
CSV_COLUMN_FIELDS = {
    "created_at": "created_at",
    "request_id": "request_id",
    "kind": "kind",
    "endpoint": "endpoint",
    "status": "status",
    "project": "project__name",
    "api_key": "api_key__prefix",
    "model": "model",
    "upstream": "upstream",
    "upstream_model": "upstream_model",
    "fallback": "fallback",
    "wallet": "wallet",
    "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
    "cached_tokens": "cached_tokens",
    "cost": "cost",
    # what the model's first official (Credit) route would have charged: "saved by routing"
    "official_route_cost": "baseline_cost",
    "official_route_wallet": "baseline_wallet",
    "latency_ms": "latency_ms",
    "transaction_id": "transaction_id",
    "researcher_run_id": "researcher_run_id",
}
CSV_COLUMNS = list(CSV_COLUMN_FIELDS)


def ledger_filter(request) -> LedgerFilter:
    """Query parameters to a filter; unknown values are ignored rather than refused."""
    get = request.GET
    return LedgerFilter(
        project_id=parse_int(get.get("project")),
        api_key_id=parse_int(get.get("key")),
        model=get.get("model", "").strip()[:120],
        route=get.get("route", "").strip()[:120],
        wallet=get.get("wallet") if get.get("wallet") in Currency.values else "",
        kind=get.get("kind")
        if get.get("kind") in {*UsageKind.values, *TransactionKind.values}
        else "",
        status=get.get("status") if get.get("status") in UsageStatus.values else "",
        start=parse_day(get.get("start")),
        end=parse_day(get.get("end")),
    )


@org_required
def ledger(request):
    flt = ledger_filter(request)
    view = "money" if request.GET.get("view") == "money" else "requests"
    if view == "money":
        page = keyset_page(
            qs=transactions_filtered(org=request.org, flt=flt).prefetch_related(
                "postings__account"
            ),
            cursor=request.GET.get("cursor"),
        )
    else:
        page = keyset_page(
            qs=requests_filtered(org=request.org, flt=flt).select_related("project", "api_key"),
            cursor=request.GET.get("cursor"),
        )
    query = request.GET.copy()
    query.pop("cursor", None)
    return render(
        request,
        "ledger/ledger.html",
        {
            "title": "Ledger",
            "view": view,
            "flt": flt,
            "page": page,
            "query": query.urlencode(),
            "projects": projects_list(org=request.org, include_archived=True),
            "keys": keys_list(org=request.org),
            "choices": usage_filter_choices(org=request.org),
            "kinds": UsageKind.choices
            if view == "requests"
            else [
                *TransactionKind.choices,
                *((k, f"{label} usage") for k, label in UsageKind.choices),
            ],
            "statuses": UsageStatus.choices,
            "currencies": Currency.choices,
            "org": request.org,
        },
    )


@org_required
def request_detail(request, request_id: str):
    record = request_story(org=request.org, request_id=request_id)
    if record is None:
        raise Http404("No such request in this organization.")
    postings = postings_of(transaction_id=record.transaction_id) if record.transaction_id else []
    return render(
        request,
        "ledger/request_detail.html",
        {
            "title": f"Request {record.request_id}",
            "record": record,
            "postings": postings,
            "formula": breakdown_of_record(record),
        },
    )


@org_required
def transaction_detail(request, pk: int):
    txn = transaction_of_org(org=request.org, transaction_id=pk)
    if txn is None:
        raise Http404("No such transaction in this organization.")
    return render(
        request,
        "ledger/transaction_detail.html",
        {"title": f"Transaction #{txn.pk}", "txn": txn, "postings": postings_of(transaction_id=pk)},
    )


class _Echo:
    """A file-like object whose write returns the line, for csv.writer over a generator."""

    def write(self, value: str) -> str:
        return value


CSV_FIELDS = list(CSV_COLUMN_FIELDS.values())
CSV_BATCH = 2000


def _csv_batch(qs, after: tuple | None) -> list[tuple]:
    """The next rows after `after` (newest first), as CSV-ready tuples plus the keyset.

    Each batch is its own short query (keyset on created_at, id): no cursor is held open
    between batches, so the export can hop threads and never pins a connection for long.
    """
    if after is not None:
        moment, pk = after
        qs = qs.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=pk))
    return list(qs.values_list(*CSV_FIELDS, "id")[:CSV_BATCH])


def _csv_lines(writer, rows: list[tuple]) -> Iterator[str]:
    for row in rows:
        values = list(row[:-1])
        values[0] = values[0].isoformat()
        yield writer.writerow(["" if v is None else v for v in values])


def _keyset(rows: list[tuple]) -> tuple | None:
    return (rows[-1][0], rows[-1][-1]) if len(rows) == CSV_BATCH else None


def _csv_rows(qs) -> Iterator[str]:
    """For WSGI servers: a plain generator, one batch in memory at a time."""
    writer = csv_writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    after = None
    while True:
        rows = _csv_batch(qs, after)
        yield from _csv_lines(writer, rows)
        after = _keyset(rows)
        if after is None:
            return


async def _csv_rows_async(qs) -> AsyncIterator[str]:
    """For ASGI servers, which buffer a synchronous iterator whole before sending it."""
    writer = csv_writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    after = None
    while True:
        rows = await sync_to_async(_csv_batch)(qs, after)
        for line in _csv_lines(writer, rows):
            yield line
        after = _keyset(rows)
        if after is None:
            return


@org_required
def ledger_csv(request):
    flt = ledger_filter(request)
    qs = requests_filtered(org=request.org, flt=flt)
    rows = _csv_rows_async(qs) if isinstance(request, ASGIRequest) else _csv_rows(qs)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="tokenforge-requests-{stamp}.csv"'
    return response


@org_required
def balance_drop_view(request):
    today = timezone.now().astimezone(UTC).date()
    end = parse_day(request.GET.get("end")) or parse_day(request.GET.get("day")) or today
    start = parse_day(request.GET.get("start")) or parse_day(request.GET.get("day")) or end
    if start > end:
        start, end = end, start
    if (end - start).days > 366:
        start = end - timedelta(days=366)
    currency = request.GET.get("wallet")
    currency = currency if currency in Currency.values else Currency.CREDIT
    return render(
        request,
        "ledger/balance_drop.html",
        {
            "title": "Why did my balance drop?",
            "drop": balance_drop(org=request.org, currency=currency, start=start, end=end),
            "currencies": Currency.choices,
        },
    )
