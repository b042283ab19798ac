"""Streaming load client: time to first byte and total time of SSE chat completions.

Raw asyncio + httptools (uvloop when present): each of `--concurrency` workers keeps one
keep-alive connection and sends streaming requests back to back until `--duration` seconds
have passed or `--count` requests were sent in total, whichever comes first. Run in its own
process so the client never shares an event loop with the server it measures.

    .venv/bin/python bench/stream_client.py --url http://127.0.0.1:8000/v1/chat/completions \
        --concurrency 16 --duration 8 [--count N] [--key tf-...] [--model bench-stream]

Prints one line `BENCH_JSON {...}`: requests, errors (by kind), requests/s, and p50/p90/p99 of
TTFB (first body byte, i.e. the first SSE event) and of total time, in microseconds.
A stream counts as an error unless it answered 200 and ended with `data: [DONE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit

import httptools


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


class _Response:
    """httptools callbacks for one response on the connection."""

    def __init__(self) -> None:
        self.status = 0
        self.first_body: float | None = None
        self.done = False
        self.tail = b""
        self.keep_alive = True

    def on_status(self, status: bytes) -> None:
        pass

    def on_body(self, body: bytes) -> None:
        if self.first_body is None:
            self.first_body = time.perf_counter()
        self.tail = (self.tail + body)[-64:]

    def on_message_complete(self) -> None:
        self.done = True


async def _one(reader, writer, request: bytes, timeout: float) -> tuple[str, float, float]:
    """Send one request on the connection; return (outcome, ttfb_s, total_s)."""
    started = time.perf_counter()
    response = _Response()
    parser = httptools.HttpResponseParser(response)
    writer.write(request)
    deadline = started + timeout
    while not response.done:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return "timeout", 0.0, 0.0
        data = await asyncio.wait_for(reader.read(65536), remaining)
        if not data:
            return "closed", 0.0, 0.0
        parser.feed_data(data)
    ended = time.perf_counter()
    status = parser.get_status_code()
    if status != 200:
        return f"status_{status}", 0.0, 0.0
    if b"[DONE]" not in response.tail:
        return "no_done", 0.0, 0.0
    if not parser.should_keep_alive():
        writer.close()
    ttfb = (response.first_body or ended) - started
    return "ok", ttfb, ended - started


async def run(args: argparse.Namespace) -> dict:
    url = urlsplit(args.url)
    host, port = url.hostname, url.port or 80
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("the stream client talks to 127.0.0.1 only")
    body = json.dumps(
        {
            "model": args.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hello."}],
        },
        separators=(",", ":"),
    ).encode()
    headers = [
        f"POST {url.path or '/'} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
    ]
    if args.key:
        headers.append(f"Authorization: Bearer {args.key}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body

    ttfbs: list[float] = []
    totals: list[float] = []
    errors: Counter = Counter()
    budget = {"left": args.count if args.count else 10**12}
    stop_at = time.perf_counter() + args.duration

    async def worker() -> None:
        reader = writer = None
        while time.perf_counter() < stop_at and budget["left"] > 0:
            budget["left"] -= 1
            try:
                if writer is None or writer.is_closing():
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), args.timeout
                    )
                outcome, ttfb, total = await _one(reader, writer, request, args.timeout)
            except (TimeoutError, OSError, httptools.HttpParserError) as exc:
                outcome, ttfb, total = type(exc).__name__, 0.0, 0.0
            if outcome == "ok":
                ttfbs.append(ttfb)
                totals.append(total)
            else:
                errors[outcome] += 1
                if writer is not None:
                    writer.close()
                    writer = None
        if writer is not None:
            writer.close()

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - begin
    us = 1_000_000
    return {
        "requests": len(totals),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "elapsed_s": round(elapsed, 3),
        "rps": round(len(totals) / elapsed, 1) if elapsed else 0.0,
        "ttfb_p50_us": round(percentile(ttfbs, 50) * us),
        "ttfb_p90_us": round(percentile(ttfbs, 90) * us),
        "ttfb_p99_us": round(percentile(ttfbs, 99) * us),
        "p50_us": round(percentile(totals, 50) * us),
        "p90_us": round(percentile(totals, 90) * us),
        "p99_us": round(percentile(totals, 99) * us),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds (upper bound)")
    parser.add_argument("--count", type=int, default=0, help="total requests (0: no limit)")
    parser.add_argument("--key", default="")
    parser.add_argument("--model", default="bench-stream")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    result = asyncio.run(run(args))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
