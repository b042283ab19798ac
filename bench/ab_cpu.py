"""A/B in one run: tokenforge from another checkout (the "base") against this one, served
side by side from the same database and mock, interleaved, with each build's worker CPU per
request read from /proc (steadier than req/s on a shared machine):

    git archive main | tar -x -C /tmp/tf-base
    .venv/bin/python bench/ab_cpu.py /tmp/tf-base [ROUNDS]

Environment as for bench/run.py (BENCH_DATABASE_URL, BENCH_REDIS_URL, WEB_CONCURRENCY).
"""

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench.run as R  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pids):
    t = 0
    for p in pids:
        f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        t += int(f[11]) + int(f[12])
    return t / TICK


procs = R.Processes()
try:
    mock = R.start_mock(procs, 1)
    new = R.start_tokenforge(procs, mock)
    new.name = "new"
    R.ROOT = Path(sys.argv[1]).resolve()
    base = R.start_tokenforge(procs, mock)
    base.name = "base"
    assert new.key and base.key, (new.note, base.note)
    model = new.model("fast")
    res = {}
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for rep in range(reps):
        for t in (base, new) if rep % 2 == 0 else (new, base):
            w = R.worker_pids(t.proc.pid)
            for c in (1, 64):
                c0 = cpu(w)
                r = R.run_wrk(t, concurrency=c, duration=4, model=model)
                c1 = cpu(w)
                cpu_ms = 1000 * (c1 - c0) / max(1, r["requests"])
                res.setdefault((t.name, c), []).append((r["rps"], r["p50_ms"], cpu_ms, r["errors"]))
                print(
                    t.name,
                    c,
                    f"{r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms cpu/req {cpu_ms:.2f} ms err {r['errors']}",
                    flush=True,
                )
    print("SUMMARY")
    for k, v in sorted(res.items()):
        print(
            k,
            f"rps med {statistics.median(x[0] for x in v):.0f}",
            f"p50 med {statistics.median(x[1] for x in v):.2f}",
            f"cpu/req med {statistics.median(x[2] for x in v):.2f}",
        )
finally:
    procs.stop_all()
