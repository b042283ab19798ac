"""The flush barrier that makes a capture durable (routing/db.py): a barrier covers only the
commits made before it started, so a request that committed while one was already running
must wait for the next one; all such requests share that next one."""

from __future__ import annotations

import asyncio

import pytest

from routing.db import FLUSH_BARRIER_SQL, _FlushBarrier


class FakePool:
    """Records when each barrier statement starts; each one finishes when released."""

    def __init__(self) -> None:
        self.started: list[asyncio.Event] = []
        self.fail_next = False

    async def fetchone(self, sql: str, params: dict):
        assert sql == FLUSH_BARRIER_SQL
        done = asyncio.Event()
        self.started.append(done)
        fail, self.fail_next = self.fail_next, False
        await done.wait()
        if fail:
            raise RuntimeError("connection lost")
        return (1,)


async def _until(check) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def _settle(pool: FakePool, index: int) -> None:
    while len(pool.started) <= index:
        await asyncio.sleep(0)
    pool.started[index].set()


def test_a_lone_commit_gets_its_own_barrier():
    async def scenario():
        pool = FakePool()
        barrier = _FlushBarrier(pool)
        waiter = asyncio.ensure_future(barrier.wait())
        await _settle(pool, 0)
        await waiter
        assert len(pool.started) == 1

    asyncio.run(scenario())


def test_commits_made_while_a_barrier_runs_share_the_next_one():
    async def scenario():
        pool = FakePool()
        barrier = _FlushBarrier(pool)
        first = asyncio.ensure_future(barrier.wait())
        await _until(lambda: len(pool.started) == 1)  # barrier 0 runs
        later = [asyncio.ensure_future(barrier.wait()) for _ in range(10)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert not any(w.done() for w in later)
        assert len(pool.started) == 1  # barrier 0 may predate their commits: not for them
        await _settle(pool, 0)
        await first
        await _until(lambda: len(pool.started) == 2)  # one more barrier, for all ten
        for _ in range(5):
            await asyncio.sleep(0)
        assert not any(w.done() for w in later), "barrier 0 may not cover them"
        await _settle(pool, 1)
        await asyncio.gather(*later)
        assert len(pool.started) == 2

    asyncio.run(scenario())


def test_a_failed_barrier_fails_every_request_waiting_on_it():
    async def scenario():
        pool = FakePool()
        barrier = _FlushBarrier(pool)
        first = asyncio.ensure_future(barrier.wait())
        await _until(lambda: len(pool.started) == 1)
        later = [asyncio.ensure_future(barrier.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        pool.fail_next = True  # the shared barrier (the second one) fails
        await _settle(pool, 0)
        await first
        await _settle(pool, 1)
        results = await asyncio.gather(*later, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        # the next request starts a fresh barrier
        again = asyncio.ensure_future(barrier.wait())
        await _settle(pool, 2)
        await again

    asyncio.run(scenario())


@pytest.mark.parametrize("n", [1, 50])
def test_every_waiter_returns(n):
    async def scenario():
        pool = FakePool()
        barrier = _FlushBarrier(pool)

        async def releaser():
            released = 0
            while released < len(pool.started) or not all(w.done() for w in waiters):
                if released < len(pool.started):
                    pool.started[released].set()
                    released += 1
                await asyncio.sleep(0)

        waiters = []
        for _ in range(n):
            waiters.append(asyncio.ensure_future(barrier.wait()))
            await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(releaser(), *waiters), timeout=5)
        assert len(pool.started) <= 2 if n > 1 else len(pool.started) == 1

    asyncio.run(scenario())
