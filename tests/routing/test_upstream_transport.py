"""The upstream transport (routing.http) against a real HTTP mock: an upstream's timeout bounds
each wait for bytes, never a whole stream; a stream left mid-way closes the upstream
connection; transport failures map to retryable 502/504; the gateway names itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from routing.http import UpstreamClient, UpstreamTransportError, http_client, http_client_aclose
from routing.providers import get_provider
from routing.providers.base import StreamState, UpstreamError, UpstreamTarget
from tests.mocks.openai_upstream import MockOpenAI, dead_base_url

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def mock():
    server = MockOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(mock) -> MockOpenAI:
    mock.reset()
    return mock


def _target(base_url: str, timeout: float = 5) -> UpstreamTarget:
    return UpstreamTarget(
        name="up", provider="openai", base_url=base_url, api_key="sk-up", timeout=timeout
    )


def _run(factory):
    async def run():
        async with UpstreamClient() as client:
            return await factory(client)

    return asyncio.run(run())


def _stream(client, target: UpstreamTarget, state: StreamState):
    return get_provider("openai").chat_stream(
        client=client,
        target=target,
        model="gpt-4o-mini",
        body={"model": "gpt-4o-mini", "messages": MSG},
        headers={},
        state=state,
    )


async def _drain(agen) -> list[dict]:
    return [chunk async for chunk in agen]


def test_a_stream_longer_than_the_timeout_is_not_cut_while_it_keeps_sending(upstream):
    upstream.mode = "slow"
    upstream.slow_chunks, upstream.slow_delay = 6, 0.3  # ~1.8 s in all, 0.3 s between chunks
    state = StreamState()
    started = time.monotonic()
    chunks = _run(lambda c: _drain(_stream(c, _target(upstream.base_url, timeout=1), state)))
    assert time.monotonic() - started > 1.5
    assert state.finish_reason == "stop" and state.usage is not None
    assert "".join(state.delivered_text) == "w0 w1 w2 w3 w4 w5"
    assert len(chunks) >= 8


def test_a_stream_silent_for_longer_than_the_timeout_breaks_retryably(upstream):
    upstream.mode = "slow"
    upstream.slow_chunks, upstream.slow_delay = 3, 3.0
    state = StreamState()
    with pytest.raises(UpstreamError) as err:
        _run(lambda c: _drain(_stream(c, _target(upstream.base_url, timeout=0.5), state)))
    assert err.value.retryable and err.value.status == 502
    assert "stream broke" in err.value.message
    assert state.delivered_text == ["w0"]  # what arrived before the silence


def test_an_upstream_slower_than_the_timeout_is_a_retryable_504(upstream):
    upstream.mode = "hang"
    upstream.hang_seconds = 2.0
    with pytest.raises(UpstreamError) as err:
        _run(
            lambda c: get_provider("openai").chat(
                client=c,
                target=_target(upstream.base_url, timeout=0.5),
                model="gpt-4o-mini",
                body={"model": "gpt-4o-mini", "messages": MSG},
                headers={},
            )
        )
    assert (err.value.status, err.value.retryable) == (504, True)
    assert err.value.message == "upstream timed out"


def test_a_refused_connection_is_a_retryable_502():
    with pytest.raises(UpstreamError) as err:
        _run(
            lambda c: get_provider("openai").chat(
                client=c,
                target=_target(dead_base_url()),
                model="gpt-4o-mini",
                body={"model": "gpt-4o-mini", "messages": MSG},
                headers={},
            )
        )
    assert (err.value.status, err.value.retryable) == (502, True)
    assert err.value.message.startswith("upstream unreachable (")


def test_a_stream_left_mid_way_closes_the_upstream_connection(upstream):
    upstream.mode = "slow"  # 400 words, 20 ms apart

    async def read_three(client):
        chunks = _stream(client, _target(upstream.base_url), StreamState())
        for _ in range(3):
            await chunks.__anext__()
        await chunks.aclose()
        deadline = time.monotonic() + 5
        while upstream.disconnects == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    _run(read_three)
    assert upstream.disconnects == 1
    assert upstream.chunks_sent < 50


def test_the_gateway_names_itself_and_sends_no_cookies_back(upstream):
    upstream.answer_headers = [(b"set-cookie", b"session=abc; Path=/")]

    async def twice(client):
        for _ in range(2):
            await _drain(_stream(client, _target(upstream.base_url), StreamState()))

    _run(twice)
    first, second = upstream.requests[-2]["headers"], upstream.requests[-1]["headers"]
    assert first["user-agent"] == second["user-agent"] == "tokenforge-gateway/0.1"
    assert "cookie" not in second


def test_one_client_per_loop_and_a_closed_one_is_replaced():
    async def run():
        client = http_client()
        assert http_client() is client
        await http_client_aclose()
        assert client.is_closed
        again = http_client()
        assert again is not client and not again.is_closed
        await http_client_aclose()

    asyncio.run(run())


def test_transport_errors_say_whether_they_timed_out(upstream):
    upstream.mode = "hang"
    upstream.hang_seconds = 2.0

    async def run(client):
        with pytest.raises(UpstreamTransportError) as timed_out:
            await client.post(
                upstream.base_url + "/chat/completions", content=b"{}", headers={}, timeout=0.3
            )
        with pytest.raises(UpstreamTransportError) as refused:
            await client.get(dead_base_url() + "/models", timeout=1)
        return timed_out.value, refused.value

    timed_out, refused = _run(run)
    assert timed_out.timeout and not refused.timeout


def test_an_answer_with_a_12_kib_header_is_read_as_httpx_read_it(upstream):
    upstream.answer_headers = [(b"x-relay-trace", b"t" * 12 * 1024)]
    state = StreamState()
    _run(lambda c: _drain(_stream(c, _target(upstream.base_url), state)))
    assert state.finish_reason == "stop"
