"""A/B in one run: tokenforge from another checkout (the "base") against this one, served
side by side from the same database and mock, interleaved, with each build's worker CPU per
request read from /proc (steadier than req/s on a shared machine):

    git archive main | tar -x -C /tmp/tf-base
    .venv/bin/python bench/ab_cpu.py /tmp/tf-base [ROUNDS] [--stream]

Non-streamed (wrk, the `fast` model) by default; `--stream` measures streamed requests
(bench/stream_client.py, the 20-chunk `stream` model) and reports TTFB instead of latency;
`--slow` opens 500 slow streams at once (50 chunks 200 ms apart), whose CPU is mostly per
chunk: (CPU per slow stream − CPU per non-streamed request) / 52 events ≈ CPU per chunk.
Environment as for bench/run.py (BENCH_DATABASE_URL, BENCH_REDIS_URL, WEB_CONCURRENCY).
"""

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench.run as R  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SLOW = "--slow" in sys.argv
STREAM = SLOW or "--stream" in sys.argv
ARGS = [a for a in sys.argv[1:] if a not in ("--stream", "--slow")]
CONCURRENCY = (500,) if SLOW else (1, 64)


def cpu(pids):
    t = 0
    for p in pids:
        f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        t += int(f[11]) + int(f[12])
    return t / TICK


def measure(target, concurrency, model) -> dict:
    if SLOW:
        r = R.run_streams(target, concurrency=concurrency, duration=30, count=500, model=model)
        return {**r, "p50_ms": r["ttfb_p50_ms"]}
    if STREAM:
        r = R.run_streams(target, concurrency=concurrency, duration=4, model=model)
        return {**r, "p50_ms": r["ttfb_p50_ms"]}
    return R.run_wrk(target, concurrency=concurrency, duration=4, model=model)


procs = R.Processes()
try:
    mock = R.start_mock(procs, 1)
    new = R.start_tokenforge(procs, mock)
    new.name = "new"
    R.ROOT = Path(ARGS[0]).resolve()
    base = R.start_tokenforge(procs, mock)
    base.name = "base"
    assert new.key and base.key, (new.note, base.note)
    model = new.model("slow" if SLOW else "stream" if STREAM else "fast")
    res = {}
    reps = int(ARGS[1]) if len(ARGS) > 1 else 3
    latency = "TTFB p50" if STREAM else "p50"
    for rep in range(reps):
        for t in (base, new) if rep % 2 == 0 else (new, base):
            w = R.worker_pids(t.proc.pid)
            for c in CONCURRENCY:
                c0 = cpu(w)
                r = measure(t, c, model)
                c1 = cpu(w)
                cpu_ms = 1000 * (c1 - c0) / max(1, r["requests"])
                res.setdefault((t.name, c), []).append((r["rps"], r["p50_ms"], cpu_ms, r["errors"]))
                print(
                    t.name,
                    c,
                    f"{r['rps']:.0f} req/s {latency} {r['p50_ms']:.2f} ms cpu/req {cpu_ms:.2f} ms err {r['errors']}",
                    flush=True,
                )
    print("SUMMARY", "slow streams" if SLOW else "streamed" if STREAM else "non-streamed")
    for k, v in sorted(res.items()):
        print(
            k,
            f"rps med {statistics.median(x[0] for x in v):.0f}",
            f"{latency} med {statistics.median(x[1] for x in v):.2f}",
            f"cpu/req med {statistics.median(x[2] for x in v):.2f}",
            f"errors {sum(x[3] for x in v)}",
        )
finally:
    procs.stop_all()
