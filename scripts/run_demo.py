"""`make run`: the embedded demo on http://127.0.0.1:8000 with no services needed.

Migrates the SQLite database, seeds the demo (operator, org, demo upstreams, money, a key),
then runs uvicorn and one Celery worker with beat (filesystem broker) as child processes.
Ctrl-C or SIGTERM stops both. `--port`/`--host` (or PORT/HOST) move the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _banner(
    *, url: str, seed_output: str, children: list[subprocess.Popen], stopped: Callable[[], bool]
) -> None:
    """Once the site answers, repeat the demo's key and log-in below the servers' start-up
    logs, so they are the last thing on the terminal rather than scrolled away."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and all(c.poll() is None for c in children):
        if stopped():
            return
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310 - our own URL
                break
        except (OSError, ValueError):
            time.sleep(0.3)
    lines = seed_output.strip().splitlines()
    key = lines[-1] if lines and lines[-1].startswith("tf-") else "(see above)"
    operator = next((line for line in lines if line.startswith("operator:")), "")
    print(
        f"""
tokenforge demo on {url}  (Ctrl-C stops it)
  {operator}
  API key: {key}
  try:     curl {url}/v1/chat/completions -H "Authorization: Bearer {key}" \\
             -H "Content-Type: application/json" \\
             -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello"}}]}}'
""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The embedded tokenforge demo.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
    args = parser.parse_args(argv)
    env = {**os.environ}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env.setdefault("DEBUG", "true")
    manage = [PYTHON, str(ROOT / "manage.py")]
    for folder in ("broker", "broker-processed"):  # kombu's filesystem transport needs them
        (ROOT / "var" / folder).mkdir(parents=True, exist_ok=True)
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run(
        [*manage, "seed_demo"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    print(seeded.stdout, end="", flush=True)
    # One finished AI Researcher run, answered by the demo upstream (a report at once).
    researched = subprocess.run(
        [*manage, "seed_research_demo"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    print(researched.stdout or researched.stderr[-500:], end="", flush=True)
    host, port = args.host, str(args.port)
    children = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                host,
                "--port",
                port,
                "--lifespan",
                "off",
                # Forwarded headers only from the proxies listed (docs/scaling.md).
                *(
                    ["--forwarded-allow-ips", os.environ["FORWARDED_ALLOW_IPS"]]
                    if os.environ.get("FORWARDED_ALLOW_IPS", "").strip()
                    else ["--no-proxy-headers"]
                ),
            ],
            cwd=ROOT,
            env=env,
        ),
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--beat",
                "--loglevel=INFO",
                "--concurrency=1",
                "--schedule",
                str(ROOT / "var" / "celerybeat-schedule"),
            ],
            cwd=ROOT,
            env=env,
        ),
    ]
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        _banner(
            url=f"http://{host}:{port}",
            seed_output=seeded.stdout,
            children=children,
            stopped=lambda: stopping,
        )
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    return 1 if failed and not stopping else 0


if __name__ == "__main__":
    sys.exit(main())
