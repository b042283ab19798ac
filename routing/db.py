"""The gateway's one hop from the event loop to the ORM.

Each request under Django's ASGI handler gets its own thread-sensitive context, i.e. a new
thread, so `sync_to_async` with the default `thread_sensitive=True` opened a new PostgreSQL
connection per request. The gateway's ORM calls are self-contained (each is one short
transaction that touches no thread-local state but the connection), so they run on the
loop's small, long-lived executor instead: its threads keep their connections (CONN_MAX_AGE),
and this module does per call what Django does per request (drop a broken or too old
connection), so a database restart heals by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.db import utils as db_utils
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus


def _run(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    close_old_connections()
    return fn(**kwargs)


_run_async = sync_to_async(_run, thread_sensitive=False)


async def db_call(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    return await _run_async(fn, kwargs)


# --- PostgreSQL straight from the event loop (the ledger's hot path) -------------------------
#
# Profile: every `db_call` is a hop to a worker thread and back, and under load that thread
# then waits for the GIL between round trips while the wallet row it locked stays locked. The
# ledger's hold/capture/void are one SQL statement each on PostgreSQL (ledger.services.holds),
# so the engine runs them here instead: psycopg's async connections in autocommit, a few per
# process and event loop, reused (no connection set-up per request). Server-side prepared
# statements (psycopg's default after 5 runs) skip re-planning the big CTEs; behind PgBouncer
# in transaction mode set `DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None`.

_CONNINFO_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "options",
    "connect_timeout",
    "target_session_attrs",
    "passfile",
    "service",
)


def pg_fast_path() -> bool:
    """True when the ledger's single-statement path applies (PostgreSQL, not switched off).
    Read from settings, not `connections[...]`: that is an asgiref Local lookup per call."""
    return getattr(settings, "LEDGER_FAST_PATH", True) and (
        "postgresql" in settings.DATABASES["default"]["ENGINE"]
    )


def _conninfo(*, synchronous_commit: bool = True) -> tuple[str, dict]:
    db = settings.DATABASES["default"]
    options = db.get("OPTIONS") or {}
    info = {k: v for k, v in options.items() if k in _CONNINFO_OPTIONS}
    info.setdefault("connect_timeout", 5)
    # The ledger statements are primary-key and unique-index lookups: one generic plan fits
    # every call, so re-planning the CTEs per execution is pure CPU on the database.
    extra = " -c plan_cache_mode=force_generic_plan"
    # The settling pool's commits must wait for the disk whatever the server's default.
    extra += " -c synchronous_commit=" + ("on" if synchronous_commit else "off")
    info["options"] = (info.get("options", "") + extra).strip()
    conninfo = make_conninfo(
        dbname=db.get("NAME") or None,
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=str(db["PORT"]) if db.get("PORT") else None,
        **info,
    )
    kwargs = {"autocommit": True}
    if "prepare_threshold" in options:
        kwargs["prepare_threshold"] = options["prepare_threshold"]
    return conninfo, kwargs


class _LoopPool:
    """At most `size` connections for one event loop, opened on demand and kept while used
    (an idle one is closed after IDLE_SECONDS); a connection in doubt is closed, never reused."""

    IDLE_SECONDS = 60.0

    def __init__(self, size: int, *, synchronous_commit: bool = True) -> None:
        self.size = size
        self.synchronous_commit = synchronous_commit
        self.idle: list[tuple[psycopg.AsyncConnection, float]] = []
        self.slots = asyncio.Semaphore(size)

    async def fetchone(self, sql: str, params: dict):
        return await self._run(sql, params, all_rows=False)

    async def fetchall(self, sql: str, params: dict) -> list:
        return await self._run(sql, params, all_rows=True)

    async def _run(self, sql: str, params: dict, *, all_rows: bool):
        async with self.slots:
            conn = None
            now = time.monotonic()
            while self.idle and conn is None:
                candidate, since = self.idle.pop()
                if candidate.closed or candidate.broken or now - since > self.IDLE_SECONDS:
                    await candidate.close()
                else:
                    conn = candidate
            if conn is None:
                conninfo, kwargs = _conninfo(synchronous_commit=self.synchronous_commit)
                conn = await psycopg.AsyncConnection.connect(conninfo, **kwargs)
            reusable = False
            try:
                cursor = await conn.execute(sql, params)
                rows = await (cursor.fetchall() if all_rows else cursor.fetchone())
                reusable = True
                return rows
            except psycopg.Error:
                reusable = (
                    not conn.broken and conn.info.transaction_status == TransactionStatus.IDLE
                )
                raise
            finally:
                if reusable:
                    self.idle.append((conn, time.monotonic()))
                else:
                    await conn.close()


_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BARRIERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _django_error(exc: psycopg.Error) -> Exception:
    """The same exception classes the ORM raises, so callers (and the views' 503 for a
    database that is down) need not know which path ran."""
    for klass in type(exc).__mro__:
        wrapper = getattr(db_utils, klass.__name__, None)
        if isinstance(wrapper, type) and issubclass(wrapper, db_utils.Error):
            return wrapper(str(exc))
    return db_utils.DatabaseError(str(exc))


# Forces a WAL flush up to here. A commit waits for the disk only if its transaction wrote
# WAL (PostgreSQL's RecordTransactionCommit): `SELECT txid_current()` writes none, so it
# committed asynchronously and flushed nothing. This statement writes one tiny row (its own
# backend's, so barriers never queue on each other's row lock) and commits on a
# synchronous_commit=on connection: when it returns, the WAL is on disk up to its commit
# record, i.e. including every asynchronous capture committed before it started.
FLUSH_BARRIER_SQL = (
    "INSERT INTO ledger_flushmark (backend_pid, flushes) VALUES (pg_backend_pid(), 1) "
    "ON CONFLICT (backend_pid) DO UPDATE SET flushes = ledger_flushmark.flushes + 1 "
    "RETURNING flushes"
)


class _FlushBarrier:
    """One flush barrier in flight per loop; requests that committed while it was already
    running wait for the next one, which then covers all of them (a barrier only covers the
    commits that happened before it started). Under load this turns one round trip and one
    commit per capture into one per batch, on top of PostgreSQL's own group commit."""

    def __init__(self, pool: _LoopPool) -> None:
        self.pool = pool
        self.running: asyncio.Future | None = None
        self.next: asyncio.Future | None = None

    def idle(self) -> bool:
        """No barrier running or waited for: nothing to share one with (low load)."""
        return self.running is None and self.next is None

    async def wait(self) -> None:
        if self.running is None:
            self.running = asyncio.ensure_future(self._run())
            await asyncio.shield(self.running)
            return
        if self.next is None:
            self.next = asyncio.get_running_loop().create_future()
        waiter = self.next
        await asyncio.shield(waiter)

    async def _run(self) -> None:
        try:
            await self.pool.fetchone(FLUSH_BARRIER_SQL, {})
        finally:
            self.running = None
            waiters, self.next = self.next, None
            if waiters is not None:
                # The commits waiting now all happened before this new barrier starts.
                self.running = asyncio.ensure_future(self._run())
                self.running.add_done_callback(lambda done: _settle_waiters(done, waiters))


def _settle_waiters(done: asyncio.Future, waiters: asyncio.Future) -> None:
    if waiters.done():
        return
    if done.cancelled():
        waiters.cancel()
    elif done.exception() is not None:
        waiters.set_exception(done.exception())
    else:
        waiters.set_result(None)


def _loop_pools() -> tuple[_LoopPool, _LoopPool]:
    """This loop's (asynchronous-commit, durable) pools, created with its flush barrier."""
    loop = asyncio.get_running_loop()
    pools = _POOLS.get(loop)
    if pools is None:
        size = getattr(settings, "DB_ASYNC_POOL_SIZE", 4)
        durable_pool = _LoopPool(size)
        pools = (_LoopPool(size, synchronous_commit=False), durable_pool)
        _BARRIERS[loop] = _FlushBarrier(durable_pool)
        _POOLS[loop] = pools
    return pools


async def pg_fetchone(sql: str, params: dict, *, durable: bool = True):
    """Run one statement (its own transaction) on this loop's pool; the first row or None.

    Every ledger statement commits with synchronous_commit=off, so the hot wallet row's lock
    is released without waiting for the disk. `durable=True` (captures, voids) then waits,
    holding no lock, for a flush barrier that started after this commit: when this returns,
    the statement's commit is on disk (WAL is flushed in order). Holds skip the barrier
    (`durable=False`): a hold moves no money, and the capture or void that resolves it
    flushes it too (docs/billing.md). With no barrier running and no other request in flight,
    a durable statement commits synchronously instead, one round trip rather than two.
    """
    pools = _loop_pools()
    try:
        if durable and _quiet():
            return await pools[1].fetchone(sql, params)  # a synchronous commit: see _Batcher
        row = await pools[0].fetchone(sql, params)
        if durable:
            await _BARRIERS[asyncio.get_running_loop()].wait()
        return row
    except psycopg.Error as exc:
        raise _django_error(exc) from exc


# Requests in flight in this process (routing.asgi counts the gateway's): a capture commits
# synchronously (see _Batcher) only while its request is the only one. Measured: at 64
# concurrent streams the lone-capture path, taken in the gaps between batches, held the wallet
# row through an fsync the next holds then waited for (−6 % streams/s).
_in_flight = [0]


@contextlib.contextmanager
def request_in_flight():
    _in_flight[0] += 1
    try:
        yield
    finally:
        _in_flight[0] -= 1


def _quiet() -> bool:
    """Low load on this loop: its request the only one in flight, no flush barrier running or
    waited for, no hold being placed. Then a durable statement commits synchronously (one
    round trip) rather than commit and wait for a barrier; see _Batcher."""
    if _in_flight[0] > 1 or not _BARRIERS[asyncio.get_running_loop()].idle():
        return False
    batchers = _BATCHERS.get(asyncio.get_running_loop())
    return batchers is None or batchers["place"].draining is None


class _Fallback(Exception):
    """A batch that placed nothing and wants its items run one by one."""


class _Batcher:
    """Group commit of ledger statements on a hot wallet: the items that arrive while one batch
    runs go together in the next, as ONE statement (`run_many`), so the wallet row is locked,
    and a round trip and a commit paid, once per batch instead of once per item. No timer: a
    lone item runs at once (`run_one`, the single statement); under load the batches grow by
    themselves. A batch is one transaction, all or nothing: if it fails, each of its items is
    run again on its own, so one bad item fails only its own request. With a `barrier` every
    item is durable (a flush barrier started after its batch committed) before its caller
    hears of it.

    At low load (a lone item, no batch settling, and `quiet()`: see `_quiet`) a durable item
    runs instead as `run_one_durable`, a synchronous commit: one round trip instead of a
    statement and then a barrier (at concurrency 1 the barrier was ~0.4 ms of every answer).
    It holds the wallet row through its own fsync, which would cost only if others waited for
    that row; under load they do, and the batched path runs."""

    MAX_ITEMS = 64

    def __init__(
        self, run_one, run_many, barrier: _FlushBarrier | None, run_one_durable=None, quiet=None
    ) -> None:
        self.run_one = run_one
        self.run_many = run_many
        self.barrier = barrier
        self.run_one_durable = run_one_durable
        self.quiet = quiet
        self.queue: list[tuple[Any, asyncio.Future]] = []
        self.draining: asyncio.Task | None = None
        self.settling: set[asyncio.Task] = set()

    async def submit(self, item: Any):
        """The item's row; raises the item's own error."""
        waiter = asyncio.get_running_loop().create_future()
        self.queue.append((item, waiter))
        if self.draining is None:
            self.draining = asyncio.ensure_future(self._drain())
        # A cancelled caller does not take its item out of the batch: it still happens.
        return await asyncio.shield(waiter)

    async def _drain(self) -> None:
        batch: list = []
        try:
            while self.queue:
                batch = self.queue[: self.MAX_ITEMS]
                del self.queue[: self.MAX_ITEMS]
                if self._runs_alone(batch):
                    try:
                        outcome = await self.run_one_durable(batch[0][0])
                    except Exception as exc:  # noqa: BLE001 - handed to its item
                        outcome = exc
                    self._hand_out(batch, [outcome], None)
                    continue
                outcomes = await self._execute([item for item, _ in batch])
                if self.barrier is None:
                    self._hand_out(batch, outcomes, None)
                    continue
                task = asyncio.ensure_future(self._settle(batch, outcomes))
                self.settling.add(task)
                task.add_done_callback(self.settling.discard)
                batch = []
        except BaseException:
            # Cancelled (its loop is closing): no caller may wait forever for an outcome.
            _cancel_waiters(batch + self.queue)
            self.queue.clear()
            raise
        finally:
            self.draining = None

    def _runs_alone(self, batch: list) -> bool:
        if len(batch) != 1 or self.run_one_durable is None or self.settling:
            return False
        return self.quiet()

    async def _execute(self, items: list) -> list:
        """Per item: its row, or the exception it failed with."""
        if len(items) == 1:
            try:
                return [await self.run_one(items[0])]
            except Exception as exc:  # noqa: BLE001 - handed to the item it belongs to
                return [exc]
        try:
            return await self.run_many(items)
        except _Fallback:
            pass  # the batch placed nothing: each item is decided on its own
        except Exception as exc:  # noqa: BLE001 - handed to its items, or each run on its own
            if isinstance(exc, psycopg.Error) and exc.sqlstate is None:
                # The connection failed: the batch may have committed, so no item is re-run
                # here (a capture's caller retries it: idempotent; a hold fails, as alone).
                return [exc] * len(items)
            # The server refused it: nothing of the batch was committed.
        outcomes = []
        for item in items:
            outcomes.extend(await self._execute([item]))
        return outcomes

    async def _settle(self, batch: list, outcomes: list) -> None:
        barrier_error = None
        if any(not isinstance(o, BaseException) for o in outcomes):
            try:
                await self.barrier.wait()
            except asyncio.CancelledError:
                _cancel_waiters(batch)
                raise
            except Exception as exc:  # noqa: BLE001 - every committed item must hear of it
                barrier_error = exc
        self._hand_out(batch, outcomes, barrier_error)

    @staticmethod
    def _hand_out(batch: list, outcomes: list, error: BaseException | None) -> None:
        for (_, waiter), outcome in zip(batch, outcomes, strict=True):
            if waiter.done():
                continue
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(outcome)


def _cancel_waiters(batch: list) -> None:
    for _, waiter in batch:
        if not waiter.done():
            waiter.cancel()


_BATCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _batchers() -> dict[str, _Batcher]:
    """This loop's batchers: "capture" (durable), "place" and "checkpoint"."""
    loop = asyncio.get_running_loop()
    batchers = _BATCHERS.get(loop)
    if batchers is None:
        from ledger.services import holds, safeguards

        pool, durable_pool = _loop_pools()

        async def capture_one(item):
            return await pool.fetchone(*holds.capture_batch_statement([item]))

        async def capture_one_durable(item):
            return await durable_pool.fetchone(*holds.capture_batch_statement([item]))

        async def capture_many(items):
            outcomes: list = [None] * len(items)  # no row: the hold was not pending
            for row in await pool.fetchall(*holds.capture_batch_statement(items)):
                outcomes[row[0] - 1] = tuple(row[1:])
            return outcomes

        async def checkpoint_many(items):
            rows = await pool.fetchall(*safeguards.checkpoint_batch_statement(items))
            pending = {str(row[0]) for row in rows}
            return [(item["hold"],) if item["hold"] in pending else None for item in items]

        async def place_one(item):
            return await pool.fetchone(*item)

        async def place_many(items):
            row = await pool.fetchone(*holds.place_batch_statement([p for _, p in items]))
            if row[0] != len(items):
                raise _Fallback
            return [PLACED] * len(items)

        batchers = {
            "capture": _Batcher(
                capture_one,
                capture_many,
                _BARRIERS[loop],
                run_one_durable=capture_one_durable,
                quiet=_quiet,
            ),
            "place": _Batcher(place_one, place_many, None),
            "checkpoint": _Batcher(
                lambda item: pool.fetchone(*safeguards.checkpoint_batch_statement([item])),
                checkpoint_many,
                None,
            ),
        }
        _BATCHERS[loop] = batchers
    return batchers


# The single place statement's row for a hold placed (ledger.services.holds.place_outcome).
PLACED = (1, 0, 1, None, None, None)


async def pg_capture(*, hold_id, cost, usage: dict | None, now):
    """Capture a hold through this loop's batcher; the single capture statement's row, or None
    when the hold was not pending. Durable when it returns."""
    from ledger.services import holds

    item = holds.capture_batch_item(hold_id=hold_id, cost=cost, usage=usage, now=now)
    try:
        return await _batchers()["capture"].submit(item)
    except psycopg.Error as exc:
        raise _django_error(exc) from exc


async def pg_place(sql: str, params: dict):
    """Place a hold (`ledger.services.holds.place_statement`'s sql and params) through this
    loop's batcher; that statement's row (a researcher step's hold runs on its own). Not
    flushed: a hold moves no money (pg_fetchone)."""
    if params.get("run") is not None:
        return await pg_fetchone(sql, params, durable=False)
    try:
        return await _batchers()["place"].submit((sql, params))
    except psycopg.Error as exc:
        raise _django_error(exc) from exc


async def pg_checkpoint(item: dict):
    """Write a hold's checkpoint (`ledger.services.safeguards.checkpoint_batch_item`) through
    this loop's batcher; its row, or None when the hold is no longer pending. Not flushed: a
    hint, not money (pg_fetchone)."""
    try:
        return await _batchers()["checkpoint"].submit(item)
    except psycopg.Error as exc:
        raise _django_error(exc) from exc


async def pg_pool_close() -> None:
    """Close this loop's connections (short-lived loops: a Celery task's `asyncio.run`)."""
    _BARRIERS.pop(asyncio.get_running_loop(), None)
    _BATCHERS.pop(asyncio.get_running_loop(), None)
    for pool in _POOLS.pop(asyncio.get_running_loop(), ()):
        for conn, _ in pool.idle:
            await conn.close()
        pool.idle.clear()
