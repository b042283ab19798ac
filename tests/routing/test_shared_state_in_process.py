"""routing/shared_state.py inside one process: the listener of a short-lived loop (a Celery
task's `asyncio.run`) ends with its loop, and a missed revocation event is caught by the
re-read of the version."""

from __future__ import annotations

import asyncio
import time

from routing import auth, cooldown, shared_state
from routing.redis import sync_redis


def _subscribers() -> int:
    return dict(sync_redis().pubsub_numsub(shared_state.CHANNEL))[shared_state.CHANNEL.encode()]


def test_a_short_lived_loop_starts_its_listener_and_leaves_nothing_behind():
    before = _subscribers()

    async def work():
        await cooldown.cooled_down([424242])  # first use: starts this loop's listener
        deadline = time.monotonic() + 3
        while not shared_state.fresh():
            assert time.monotonic() < deadline, "the listener never synced"
            await asyncio.sleep(0.01)
        assert _subscribers() == before + 1
        # An opening published elsewhere reaches this process through the channel.
        cooldown.breaker_open_now(424242, seconds=5)
        deadline = time.monotonic() + shared_state.STALENESS_BOUND_SECONDS
        while not await cooldown.cooled_down([424242]):
            assert time.monotonic() < deadline, "the opening was not pushed within the bound"
            await asyncio.sleep(0.005)
        cooldown.breaker_close_now(424242)
        deadline = time.monotonic() + shared_state.STALENESS_BOUND_SECONDS
        while await cooldown.cooled_down([424242]):
            assert time.monotonic() < deadline, "the closing was not pushed within the bound"
            await asyncio.sleep(0.005)
        loop = asyncio.get_running_loop()
        return loop, shared_state._listeners[loop].task

    try:
        loop, task = asyncio.run(work())
    finally:
        cooldown.breaker_close_now(424242)
        cooldown.cooldown_reset_local()
    assert task.cancelled()  # asyncio.run cancelled it with the loop
    assert loop not in shared_state._listeners  # nothing keeps the closed loop alive
    deadline = time.monotonic() + 2
    while _subscribers() != before:  # its connection is closed
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_missed_revocation_event_clears_the_whole_cache_at_the_next_re_read():
    auth.key_cache_invalidate()
    auth._seen_version[0] = 10
    auth._cache["a"] = (time.monotonic() + 60, None)
    auth._cache["b"] = (time.monotonic() + 60, None)
    auth.revocation_event(11, "a")  # the next version: adopted, only that key dropped
    assert "a" not in auth._cache and "b" in auth._cache and auth._seen_version[0] == 11
    auth.revocation_event(13, "c")  # version 12's event was lost: not adopted
    assert "b" in auth._cache and auth._seen_version[0] == 11
    auth.revocation_version_seen(13)  # the re-read sees the version moved
    assert auth._cache == {} and auth._seen_version[0] == 13
    auth._seen_version[0] = None


def test_a_burst_that_finds_the_state_stale_shares_one_re_read_instead_of_one_each():
    """A busy loop runs the periodic re-read late; the requests that find the state stale
    then wait for one shared read (started after they asked) instead of each asking Redis,
    and the state they use is that read's: a breaker opened in Redis meanwhile is seen."""

    async def work():
        await cooldown.cooled_down([525252])  # starts this loop's listener
        deadline = time.monotonic() + 3
        while not shared_state.fresh():
            assert time.monotonic() < deadline, "the listener never synced"
            await asyncio.sleep(0.01)
        listener = shared_state._listeners[asyncio.get_running_loop()]
        listener.task.cancel()  # the periodic re-read stops, as if the loop were too busy
        await asyncio.sleep(0)
        listener.snapshot = sync_snapshot = _counting(listener.snapshot)
        listener.fresh_until = 0.0
        # Opened in Redis with no event reaching this process (as if the message was lost).
        sync_redis().eval(
            "redis.call('SET', KEYS[1], '1', 'PX', 5000); redis.call('SADD', KEYS[2], ARGV[1])",
            2,
            shared_state.BREAKER_ON_PREFIX + "525252",
            shared_state.OPEN_BREAKERS_KEY,
            "525252",
        )
        results = await asyncio.gather(*(cooldown.cooled_down([525252]) for _ in range(50)))
        return sync_snapshot.calls, results

    try:
        calls, results = asyncio.run(work())
    finally:
        cooldown.breaker_close_now(525252)
        cooldown.cooldown_reset_local()
    assert calls == 1
    assert all(r == {525252} for r in results)


class _counting:
    def __init__(self, script) -> None:
        self.script, self.calls = script, 0

    async def __call__(self, **kwargs):
        self.calls += 1
        return await self.script(**kwargs)


def test_a_burst_reaching_a_loop_before_its_listener_subscribed_waits_for_its_first_read(
    monkeypatch,
):
    """A worker that no request has woken yet: its first burst waits for the listener's first
    snapshot instead of opening a Redis connection per request, and sees what it read."""
    from routing import cooldown as cooldown_module

    direct: list[int] = []
    real = cooldown_module.async_redis

    def counting():
        direct.append(1)
        return real()

    monkeypatch.setattr(cooldown_module, "async_redis", counting)
    cooldown.breaker_open_now(626262, seconds=5)

    async def work():
        assert asyncio.get_running_loop() not in shared_state._listeners
        return await asyncio.gather(*(cooldown.cooled_down([626262]) for _ in range(50)))

    try:
        results = asyncio.run(work())
    finally:
        cooldown.breaker_close_now(626262)
        cooldown.cooldown_reset_local()
    assert direct == []  # no request read Redis itself
    assert all(r == {626262} for r in results)


def test_a_worker_subscribes_at_startup_before_any_request():
    """ASGI lifespan (scripts/serve.py turns it on): the worker's listener is started and
    synced at startup, so its first burst of requests finds the state in-process."""
    from config.asgi import application

    before = _subscribers()

    async def work():
        inbox: asyncio.Queue = asyncio.Queue()
        sent: list[str] = []

        async def send(message):
            sent.append(message["type"])

        lifespan = asyncio.ensure_future(
            application({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)
        )
        await inbox.put({"type": "lifespan.startup"})
        while not sent:
            await asyncio.sleep(0.001)
        listener = shared_state._listeners[asyncio.get_running_loop()]  # started by startup
        deadline = time.monotonic() + 3
        while listener.fresh_until <= time.monotonic():
            assert time.monotonic() < deadline, "the listener did not sync at startup"
            await asyncio.sleep(0.01)
        subscribed = _subscribers()
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 5)
        return sent, subscribed, asyncio.get_running_loop() in shared_state._listeners

    sent, subscribed, still_listening = asyncio.run(work())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert subscribed == before + 1
    assert not still_listening
