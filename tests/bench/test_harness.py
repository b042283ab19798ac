"""The benchmark harness's own parts: report sections, the mock's wire format, the clients."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from bench.report import read_section, write_section

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mock_base():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_write_section_replaces_only_its_own_section(tmp_path):
    report = tmp_path / "benchmarks.md"
    write_section("holds", "1,234 pairs per second", path=report)
    write_section("Dashboard pages with 1,000,000 usage records", "p95 120 ms", path=report)
    write_section("holds", "2,000 pairs per second", path=report)

    text = report.read_text()
    assert "2,000 pairs per second" in text and "1,234" not in text
    assert "p95 120 ms" in text
    assert text.count("<!-- section:holds -->") == 1
    assert read_section("dashboard", path=report).startswith("## Dashboard pages")
    assert "_Not measured yet" in read_section("memory", path=report)


def test_write_section_appends_an_unknown_section_with_its_title(tmp_path):
    report = tmp_path / "benchmarks.md"
    write_section("Cold start", "3 s", path=report)
    assert read_section("cold-start", path=report) == "## Cold start\n\n3 s"


def test_the_mock_answers_the_openai_sdk_with_usage(mock_base):
    client = openai.OpenAI(base_url=f"{mock_base}/v1", api_key="sk-mock")
    reply = client.chat.completions.create(
        model="mock-3x0", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "tok tok tok "
    assert reply.usage.completion_tokens == 3
    assert [m.id for m in client.models.list()] == ["mock-fast"]


def test_the_mock_streams_chunks_then_usage_then_done(mock_base):
    client = openai.OpenAI(base_url=f"{mock_base}/v1", api_key="sk-mock")
    started = time.perf_counter()
    chunks = list(
        client.chat.completions.create(
            model="mock-4x20",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "hi"}],
        )
    )
    elapsed = time.perf_counter() - started
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok " * 4
    assert chunks[-1].usage.total_tokens == 16
    assert elapsed >= 0.08  # four chunks 20 ms apart


def test_the_stream_client_reports_ttfb_and_totals(mock_base):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "stream_client.py"),
            "--url",
            f"{mock_base}/v1/chat/completions",
            "--concurrency",
            "4",
            "--count",
            "20",
            "--duration",
            "10",
            "--model",
            "mock-5x0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    result = json.loads(out.split("BENCH_JSON ", 1)[1])
    assert result["requests"] == 20 and result["errors"] == 0
    assert 0 < result["ttfb_p50_us"] <= result["p50_us"]


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_wrk_with_post_lua_prints_a_machine_readable_line(mock_base):
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c2",
            "-d1s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "post.lua"),
            mock_base,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"BENCH_MODEL": "mock-fast", "PATH": "/usr/bin:/bin"},
    ).stdout
    result = json.loads(out.split("BENCH_JSON ", 1)[1])
    assert result["requests"] > 0 and result["errors_status"] == 0
    assert result["p50_us"] <= result["p99_us"]
