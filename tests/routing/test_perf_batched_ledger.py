"""Holds and captures batched on a hot wallet (routing/db.py `_Batcher`, the batch statements in
ledger/services/holds.py): many requests on one wallet share one statement, yet each keeps
its own outcome, money moves exactly as one statement per request would move it, the ledger
stays balanced, budgets and the balance are never exceeded, and no capture is reported
before a flush barrier that started after its batch committed."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import DataError, connections

from ledger.errors import BudgetExceeded, InsufficientBalance
from ledger.models import (
    Account,
    AccountKind,
    BudgetCounter,
    Hold,
    HoldStatus,
    Posting,
    Transaction,
    UsageRecord,
)
from ledger.services import holds
from ledger.services.budgets import budget_set
from ledger.services.reconcile import reconcile
from routing import db as routing_db
from routing.db import _Batcher, pg_pool_close
from routing.engine import _ledger_capture, _ledger_place, _ledger_void
from tests.routing.conftest import make_tenant

HOLD = Decimal("0.0100000000")


def run(coro):
    """asyncio.run, then close this loop's ledger connections and Django's."""

    async def wrapper():
        try:
            return await coro
        finally:
            await pg_pool_close()
            await sync_to_async(connections.close_all)()

    return asyncio.run(wrapper())


def _usage(t, request_id: str, **extra) -> dict:
    return {
        "request_id": request_id,
        "project_id": t.project.pk,
        "api_key_id": t.api_key.pk,
        "model": "m",
        "wallet": "CREDIT",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        **extra,
    }


async def _place(t, hold_id, amount=HOLD):
    await _ledger_place(
        hold_id=hold_id,
        org_id=t.org.pk,
        currency="CREDIT",
        amount=amount,
        project_id=t.project.pk,
        api_key_id=t.api_key.pk,
        request_id=f"r_{hold_id.hex}",
        ttl=300,
    )


@pytest.fixture
def batch_sizes(monkeypatch):
    """The size of every multi-item statement the batchers send, by kind."""
    sizes: dict[str, list[int]] = {"place": [], "capture": []}
    place, capture = holds.place_batch_statement, holds.capture_batch_statement

    def place_batch(items):
        sizes["place"].append(len(items))
        return place(items)

    def capture_batch(items):
        if len(items) > 1:
            sizes["capture"].append(len(items))
        return capture(items)

    monkeypatch.setattr(holds, "place_batch_statement", place_batch)
    monkeypatch.setattr(holds, "capture_batch_statement", capture_batch)
    return sizes


def _wallet(t) -> Account:
    return Account.objects.get(org=t.org, currency="CREDIT", kind=AccountKind.WALLET)


def _assert_balanced(t) -> None:
    report = reconcile(org=t.org)
    assert report.ok, "\n".join(str(p) for p in report.problems)
    for txn in Transaction.objects.filter(org=t.org):
        assert sum(p.amount for p in Posting.objects.filter(transaction=txn)) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_pairs_on_one_wallet_share_statements_and_each_is_charged_exactly(
    batch_sizes,
):
    t = make_tenant(credit="10")
    budget_set(org=t.org, currency="CREDIT", amount=Decimal("5"), period="day", project=t.project)
    costs = [Decimal("0.000123") * (i + 1) for i in range(60)]
    ids = [uuid.uuid4() for _ in costs]

    async def pair(hold_id, cost):
        await _place(t, hold_id)
        await _ledger_capture(hold_id=hold_id, amount=cost, usage=_usage(t, f"r_{hold_id.hex}"))

    async def scenario():
        await pair(uuid.uuid4(), Decimal("0"))  # creates today's budget counter (ORM path)
        await asyncio.gather(*(pair(h, c) for h, c in zip(ids, costs, strict=True)))

    run(scenario())
    assert max(batch_sizes["place"]) > 1 and max(batch_sizes["capture"]) > 1, batch_sizes
    total = sum(costs)
    for hold_id, cost in zip(ids, costs, strict=True):
        hold = Hold.objects.get(pk=hold_id)
        assert (hold.status, hold.captured_amount) == (HoldStatus.CAPTURED, cost)
        assert UsageRecord.objects.filter(hold_id=hold_id).count() == 1
        record = UsageRecord.objects.get(hold_id=hold_id)
        assert (record.cost, record.request_id) == (cost, f"r_{hold_id.hex}")
        assert record.transaction.hold_id == hold_id
    wallet = _wallet(t)
    assert (wallet.posted, wallet.held) == (Decimal("10") - total, Decimal("0"))
    counter = BudgetCounter.objects.get(budget__project=t.project)
    assert (counter.spent, counter.reserved) == (total, Decimal("0"))
    _assert_balanced(t)


@pytest.mark.django_db(transaction=True)
def test_a_batch_spanning_two_wallets_charges_each_its_own(batch_sizes):
    tenants = [make_tenant(credit="3"), make_tenant(credit="7")]
    jobs = [(t, uuid.uuid4(), Decimal("0.0005") * (i + 1)) for i in range(30) for t in tenants]

    async def pair(t, hold_id, cost):
        await _place(t, hold_id)
        await _ledger_capture(hold_id=hold_id, amount=cost, usage=_usage(t, f"r_{hold_id.hex}"))

    async def scenario():
        await asyncio.gather(*(pair(*job) for job in jobs))

    run(scenario())
    assert max(batch_sizes["place"]) > 1 and max(batch_sizes["capture"]) > 1, batch_sizes
    for t, funded in zip(tenants, ("3", "7"), strict=True):
        # costs above the hold (from the 21st) charge the hold, the rest booked to shortfall
        spent = sum(min(cost, HOLD) for owner, _, cost in jobs if owner is t)
        wallet = _wallet(t)
        assert (wallet.posted, wallet.held) == (Decimal(funded) - spent, Decimal("0"))
        assert UsageRecord.objects.filter(org=t.org).count() == 30
        assert sum(r.cost for r in UsageRecord.objects.filter(org=t.org)) == sum(
            cost for owner, _, cost in jobs if owner is t
        )
        _assert_balanced(t)


@pytest.mark.django_db(transaction=True)
def test_one_failing_capture_in_a_batch_leaves_the_others_captured(batch_sizes):
    t = make_tenant(credit="10")
    ids = [uuid.uuid4() for _ in range(8)]
    bad = ids[3]

    async def scenario():
        await asyncio.gather(*(_place(t, h) for h in ids))
        results = await asyncio.gather(
            *(
                _ledger_capture(
                    hold_id=h,
                    amount=Decimal("0.001"),
                    # request_id is 64 characters at most: this item's INSERT fails
                    usage=_usage(t, "x" * 200 if h == bad else f"r_{h.hex}"),
                )
                for h in ids
            ),
            return_exceptions=True,
        )
        return results

    results = run(scenario())
    assert batch_sizes["capture"] and batch_sizes["capture"][0] == len(ids)  # one batch first
    assert isinstance(results[3], DataError), results
    assert [r for i, r in enumerate(results) if i != 3] == [None] * 7
    assert Hold.objects.get(pk=bad).status == HoldStatus.PENDING  # nothing of it was written
    for hold_id in ids:
        if hold_id != bad:
            hold = Hold.objects.get(pk=hold_id)
            assert (hold.status, hold.captured_amount) == (HoldStatus.CAPTURED, Decimal("0.001"))
            assert UsageRecord.objects.filter(hold_id=hold_id).count() == 1
    run(_ledger_void(hold_id=bad, usage=None))
    wallet = _wallet(t)
    assert (wallet.posted, wallet.held) == (Decimal("10") - Decimal("0.007"), Decimal("0"))
    _assert_balanced(t)


@pytest.mark.django_db(transaction=True)
def test_batched_holds_never_overdraw_the_wallet(batch_sizes):
    t = make_tenant(credit="0.05")
    ids = [uuid.uuid4() for _ in range(20)]

    async def scenario():
        return await asyncio.gather(*(_place(t, h) for h in ids), return_exceptions=True)

    results = run(scenario())
    assert batch_sizes["place"], "the holds were not batched"
    placed = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    assert (len(placed), len(refused)) == (5, 15), results
    wallet = _wallet(t)
    assert (wallet.posted, wallet.held) == (Decimal("0.05"), Decimal("0.05"))
    assert Hold.objects.filter(org=t.org, status=HoldStatus.PENDING).count() == 5
    run(_void_all(ids))
    assert _wallet(t).held == Decimal("0")


async def _void_all(ids) -> None:
    for hold_id in ids:
        await _ledger_void(hold_id=hold_id, usage=None)


@pytest.mark.django_db(transaction=True)
def test_batched_holds_never_exceed_a_budget(batch_sizes):
    t = make_tenant(credit="10")
    budget_set(
        org=t.org, currency="CREDIT", amount=Decimal("0.03"), period="day", project=t.project
    )

    ids = [uuid.uuid4() for _ in range(13)]

    async def scenario():
        await _place(t, ids[0], amount=Decimal("0"))  # creates today's counter
        return await asyncio.gather(*(_place(t, h) for h in ids[1:]), return_exceptions=True)

    results = run(scenario())
    assert batch_sizes["place"], "the holds were not batched"
    assert [type(r) for r in results].count(BudgetExceeded) == 9, results
    assert results.count(None) == 3
    counter = BudgetCounter.objects.get(budget__project=t.project)
    assert counter.reserved == Decimal("0.03")
    assert _wallet(t).held == Decimal("0.03")
    run(_void_all(ids))
    counter.refresh_from_db()
    assert (counter.reserved, _wallet(t).held) == (Decimal("0"), Decimal("0"))


# --- the batcher itself (no database): durability and per-item outcomes -----------------------


class FakeBarrier:
    def __init__(self, events: list) -> None:
        self.events = events
        self.release = asyncio.Event()
        self.fail = False

    async def wait(self) -> None:
        self.events.append("barrier started")
        await self.release.wait()
        self.events.append("barrier done")
        if self.fail:
            raise RuntimeError("flush failed")


def _recording_batcher(events: list, barrier, **options) -> _Batcher:
    """A batcher whose statements only record that they committed (one item, or a batch)."""

    async def one(item):
        events.append(f"commit {item}")
        return (item,)

    async def many(items):
        events.append(f"commit {items}")
        return [(i,) for i in items]

    return _Batcher(one, many, barrier, **options)


def test_no_capture_is_reported_before_a_barrier_that_started_after_its_batch_committed():
    async def scenario():
        events: list = []
        barrier = FakeBarrier(events)

        batcher = _recording_batcher(events, barrier)
        waiters = [asyncio.ensure_future(batcher.submit(i)) for i in range(5)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert events == ["commit [0, 1, 2, 3, 4]", "barrier started"]
        assert not any(w.done() for w in waiters)  # committed, not yet on disk: not told
        barrier.release.set()
        assert await asyncio.gather(*waiters) == [(i,) for i in range(5)]

        barrier.fail = True  # a barrier that fails fails the captures waiting on it
        results = await asyncio.gather(batcher.submit(9), return_exceptions=True)
        assert isinstance(results[0], RuntimeError)

    asyncio.run(scenario())


def test_a_refused_batch_runs_each_item_alone_but_a_lost_connection_does_not():
    async def scenario():
        alone: list = []

        async def one(item):
            alone.append(item)
            if item == "bad":
                raise ValueError(item)
            return (item,)

        async def refused(items):
            raise routing_db._Fallback

        batcher = _Batcher(one, refused, None)
        results = await asyncio.gather(
            *(batcher.submit(i) for i in ("a", "bad", "c")), return_exceptions=True
        )
        assert results[0] == ("a",) and results[2] == ("c",)
        assert isinstance(results[1], ValueError)
        assert alone == ["a", "bad", "c"]

        import psycopg

        async def lost(items):
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        alone.clear()
        batcher = _Batcher(one, lost, None)
        results = await asyncio.gather(
            *(batcher.submit(i) for i in ("a", "b")), return_exceptions=True
        )
        # it may have committed: no item is re-run behind its caller's back
        assert all(isinstance(r, psycopg.OperationalError) for r in results)
        assert alone == []

    asyncio.run(scenario())


def test_a_lone_item_at_low_load_commits_synchronously_without_a_barrier():
    """Concurrency 1: one round trip with a synchronous commit, not a statement then a barrier;
    as soon as a barrier is running (load) items go the batched way again."""

    async def scenario():
        events: list = []
        barrier = FakeBarrier(events)
        barrier.running = None
        barrier.idle = lambda: barrier.running is None

        async def durable(item):
            events.append(f"durable commit {item}")
            return (item,)

        batcher = _recording_batcher(events, barrier, run_one_durable=durable, quiet=barrier.idle)
        assert await batcher.submit(1) == (1,)
        assert events == ["durable commit 1"]

        events.clear()
        barrier.running = object()  # a barrier in flight: others are settling right now
        waiter = asyncio.ensure_future(batcher.submit(2))
        for _ in range(10):
            await asyncio.sleep(0)
        assert events == ["commit 2", "barrier started"] and not waiter.done()
        barrier.release.set()
        assert await waiter == (2,)

    asyncio.run(scenario())


@pytest.fixture
def statements(monkeypatch) -> list[tuple[bool, str]]:
    """Each ledger statement run from here on: (on a synchronous_commit=on connection, the
    statement's first words)."""
    ran: list[tuple[bool, str]] = []
    fetchone = routing_db._LoopPool.fetchone

    async def spy(self, sql, params):
        ran.append((self.synchronous_commit, " ".join(sql.split())[:30]))
        return await fetchone(self, sql, params)

    monkeypatch.setattr(routing_db._LoopPool, "fetchone", spy)
    return ran


@pytest.mark.django_db(transaction=True)
def test_a_lone_capture_commits_on_a_synchronous_commit_connection_and_runs_no_barrier(
    statements,
):
    """What makes the lone capture durable without a barrier: its statement ran on a
    connection with synchronous_commit=on (the crash test proves it on disk)."""
    t = make_tenant(credit="1")
    holds.system_accounts_ensure()  # else the first capture is retried once after creating them
    ran = statements

    async def scenario():
        hold_id = uuid.uuid4()
        await _place(t, hold_id)
        ran.clear()
        await _ledger_capture(
            hold_id=hold_id, amount=Decimal("0.004"), usage=_usage(t, f"r_{hold_id.hex}")
        )
        captured = list(ran)
        setting = await routing_db._loop_pools()[1].fetchone(
            "SELECT current_setting('synchronous_commit')", {}
        )
        return hold_id, captured, setting[0]

    hold_id, captured, setting = run(scenario())
    assert setting == "on"
    assert len(captured) == 1, captured  # one statement: no flush barrier after it
    assert captured[0][0] is True and "ledger_flushmark" not in captured[0][1]
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.CAPTURED
    assert UsageRecord.objects.get(hold_id=hold_id).cost == Decimal("0.0040000000")
    _assert_balanced(t)


@pytest.mark.django_db(transaction=True)
def test_checkpoints_of_many_streams_share_one_statement_and_each_hold_keeps_its_own(
    monkeypatch,
):
    """Streams starting at once write ahead in one statement (routing.db.pg_checkpoint): each
    hold gets its own expiry, cost and usage; a hold already captured is left alone; a
    keepalive without a charge keeps the charge written before."""
    from django.utils import timezone

    from ledger.services import safeguards
    from routing.engine import _ledger_keepalive

    t = make_tenant(credit="5")
    holds.system_accounts_ensure()
    sizes: list[int] = []
    batch = safeguards.checkpoint_batch_statement

    def spy(items):
        sizes.append(len(items))
        return batch(items)

    monkeypatch.setattr(safeguards, "checkpoint_batch_statement", spy)
    ids = [uuid.uuid4() for _ in range(12)]

    async def scenario():
        await asyncio.gather(*(_place(t, h) for h in ids))
        await _ledger_capture(hold_id=ids[0], amount=Decimal("0.001"), usage=None)
        before = timezone.now()
        await asyncio.gather(
            *(
                _ledger_keepalive(
                    hold_id=h,
                    ttl=600 + n,
                    cost=Decimal("0.00") + Decimal(n) / 1000,
                    usage=_usage(t, f"w_{n}") if n % 2 else None,
                )
                for n, h in enumerate(ids)
            )
        )
        await _ledger_keepalive(hold_id=ids[3], ttl=900)  # a timer tick: no new charge
        return before

    before = run(scenario())
    assert max(sizes) > 1  # shared statements, not one round trip per stream
    captured = Hold.objects.get(pk=ids[0])
    assert captured.status == HoldStatus.CAPTURED and captured.settle_cost is None
    for n, hold_id in enumerate(ids[1:], start=1):
        hold = Hold.objects.get(pk=hold_id)
        assert hold.settle_cost == Decimal(n) / 1000
        ttl = 900 if n == 3 else 600 + n
        assert abs((hold.expires_at - before).total_seconds() - ttl) < 5
        if n % 2:
            assert hold.settle_usage["request_id"] == f"w_{n}"
        else:
            assert hold.settle_usage is None

    async def settle_the_rest():
        for hold_id in ids[1:]:
            await _ledger_void(hold_id=hold_id, usage=None)

    run(settle_the_rest())
    _assert_balanced(t)


@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_batch_never_waits_for_a_hold_that_is_being_settled():
    """A hold locked by a capture in flight is skipped, not waited for: waiting deadlocked
    with capture batches that lock the same holds in another order."""
    import psycopg

    from ledger.services import safeguards
    from routing.db import _conninfo

    t = make_tenant(credit="5")
    ids = [uuid.uuid4() for _ in range(2)]

    async def scenario():
        await asyncio.gather(*(_place(t, h) for h in ids))
        conninfo, _ = _conninfo()
        other = await psycopg.AsyncConnection.connect(conninfo)  # a transaction left open
        try:
            await other.execute(
                "SELECT id FROM ledger_hold WHERE id = %s FOR NO KEY UPDATE", (ids[0],)
            )
            from django.utils import timezone

            items = [
                safeguards.checkpoint_batch_item(
                    hold_id=h, now=timezone.now(), ttl=900, cost=Decimal("0.002")
                )
                for h in ids
            ]
            sql, params = safeguards.checkpoint_batch_statement(items)
            rows = await asyncio.wait_for(
                routing_db._loop_pools()[0].fetchall(sql, params), timeout=5
            )
            await other.rollback()
        finally:
            await other.close()
        for hold_id in ids:
            await _ledger_void(hold_id=hold_id, usage=None)
        return [str(r[0]) for r in rows]

    assert run(scenario()) == [str(ids[1])]
    _assert_balanced(t)


@pytest.mark.django_db(transaction=True)
def test_with_another_request_in_flight_a_capture_waits_for_the_barrier_instead(statements):
    """The synchronous commit holds the wallet row through its fsync: only worth it when no
    other request of this process could be waiting for that row."""
    t = make_tenant(credit="1")
    holds.system_accounts_ensure()
    ran = statements

    async def scenario():
        hold_id = uuid.uuid4()
        await _place(t, hold_id)
        ran.clear()
        with routing_db.request_in_flight(), routing_db.request_in_flight():
            await _ledger_capture(
                hold_id=hold_id, amount=Decimal("0.004"), usage=_usage(t, f"r_{hold_id.hex}")
            )
        return hold_id

    hold_id = run(scenario())
    assert [durable for durable, _ in ran] == [False, True]  # the statement, then a barrier
    assert "ledger_flushmark" in ran[1][1]
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.CAPTURED
    _assert_balanced(t)


def test_a_batcher_cancelled_with_its_loop_leaves_no_caller_waiting():
    """When the loop closes it cancels the drain mid-statement: the callers of that batch and
    of the items queued behind it hear of it (cancelled) instead of waiting forever (it hung
    asyncio.run's shutdown on Python 3.11)."""

    async def scenario():
        started = asyncio.Event()

        async def slow(item):
            started.set()
            await asyncio.sleep(3600)

        batcher = _Batcher(slow, slow, None)
        running = asyncio.ensure_future(batcher.submit("a"))
        await started.wait()
        queued = asyncio.ensure_future(batcher.submit("b"))
        await asyncio.sleep(0)
        batcher.draining.cancel()
        return await asyncio.wait_for(
            asyncio.gather(running, queued, return_exceptions=True), timeout=2
        )

    results = asyncio.run(scenario())
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
