"""Redis commands per /v1/ request: a checkout (this one, or BASE_DIR) served alone against
the bench database and mock, Redis's MONITOR filtered to the bench Redis db while N
sequential requests run, for a key without limits and one with RPM and TPM limits, then
during 4 s of wrk at concurrency 64 (the key without limits):

    .venv/bin/python bench/redis_per_request.py [BASE_DIR] [N]

Commands run inside scripts are not counted (one EVAL/EVALSHA is one round trip). The
background re-reads of routing/shared_state.py are reported per second, apart.
Environment as for bench/run.py (BENCH_DATABASE_URL, BENCH_REDIS_URL, WEB_CONCURRENCY).
"""

import collections
import sys
import threading
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench.run as R  # noqa: E402


def monitor_counts(target, key: str, model: str, n: int, concurrency: int = 1):
    """Commands seen during `n` sequential requests (concurrency 1), or during a 4 s wrk run at
    `concurrency` (then `n` is set to the number of requests wrk made)."""
    url = target.base
    db = int(R.REDIS_URL.rsplit("/", 1)[-1] or 0)
    seen: collections.Counter = collections.Counter()
    ready, done = threading.Event(), threading.Event()
    conn = redis.Redis.from_url(R.REDIS_URL)

    def watch():
        with conn.monitor() as mon:
            ready.set()
            while not done.is_set():
                cmd = mon.next_command()
                if cmd.get("db") == db and cmd.get("client_type") != "lua":
                    seen[cmd["command"].split()[0].upper()] += 1

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=20) as client:
        for _ in range(20):  # warm: the key and the routing table cached, listener running
            client.post("/v1/chat/completions", json=body, headers=headers)
        time.sleep(0.5)
        seen.clear()
        started = time.monotonic()
        if concurrency == 1:
            for _ in range(n):
                response = client.post("/v1/chat/completions", json=body, headers=headers)
                assert response.status_code == 200
        else:
            saved, target.key = target.key, key
            result = R.run_wrk(target, concurrency=concurrency, duration=4, model=model)
            target.key = saved
            n = result["requests"]
            assert not result["errors"], result
        elapsed = time.monotonic() - started
    done.set()
    redis.Redis.from_url(R.REDIS_URL).ping()
    thread.join(5)
    seen["PING"] -= 1
    seen["SELECT"] -= 1
    return +seen, elapsed, n


def main() -> None:
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    roots = [("new", R.ROOT)]
    if len(sys.argv) > 1 and sys.argv[1]:
        roots.append(("base", Path(sys.argv[1]).resolve()))
    procs = R.Processes()
    try:
        mock = R.start_mock(procs, 1)
        for name, root in roots:
            R.ROOT = root
            target = R.start_tokenforge(procs, mock)
            assert target.key, target.note
            slug = next(c for c in target.commands if " topup " in c).split("--org ")[1].split()[0]
            out = R._manage(
                R.tokenforge_env(),
                "create_key",
                "--org",
                slug,
                "--project",
                "bench",
                "--name",
                "limited",
                "--rpm",
                "1000000",
                "--tpm",
                "1000000000",
            )
            limited = out.strip().splitlines()[-1].strip()
            model = target.model("fast")
            for label, key, c in (
                ("no limits, c1", target.key, 1),
                ("rpm+tpm, c1", limited, 1),
                ("no limits, c64", target.key, 64),
            ):
                counts, elapsed, n = monitor_counts(target, key, model, count, c)
                scripts = counts.pop("EVALSHA", 0)
                per_request = {k: round(v / n, 2) for k, v in sorted(counts.items())}
                print(
                    f"{name} ({label}, {n} requests): per request {per_request} "
                    f"(total {sum(counts.values()) / n:.2f}; counts {dict(counts)}); EVALSHA {scripts} in "
                    f"{elapsed:.1f} s ({scripts / elapsed:.1f}/s)",
                    flush=True,
                )
            procs.stop(target.proc)
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
