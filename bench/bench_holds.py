"""Hold plus capture pairs per second on ONE hot wallet, on PostgreSQL.

Every request of an organization reserves on, then settles against, the same wallet row: the
row lock on it is the one serialisation point more gateway boxes do not remove
(docs/scaling.md). This measures it with the gateway's own ledger path (`routing.engine`'s
hold placement and capture: the holds, and the captures, that arrive while one statement runs
go together in the next, one SQL statement per batch, on psycopg async connections; every
capture durable through the flush barrier before it returns), from several processes at once,
each running many concurrent pairs, every capture writing its postings and a full usage
record, exactly as a proxied request does:

    .venv/bin/python bench/bench_holds.py                 # 2 processes x 24 pairs, 10 s
    .venv/bin/python bench/bench_holds.py --processes 4 --concurrency 32 --seconds 20

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tf_benchrun; the
database is created and migrated when needed), BENCH_REDIS_URL. Writes the "holds" section of
docs/benchmarks.md and checks the ledger afterwards (held == sum of open holds, no hold left
pending, postings balanced).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.run import DATABASE_URL, _manage, db_count, ensure_database, tokenforge_env  # noqa: E402

ORG = "bench-holds"


def _django(env: dict) -> None:
    os.environ.update(env)
    import django

    django.setup()


def prepare(env: dict) -> tuple[int, int, int]:
    """A migrated database, an org with a funded CREDIT wallet, a project and a key."""
    ensure_database(DATABASE_URL)
    _manage(env, "migrate", "--noinput", timeout=300)
    out = _manage(
        env,
        "create_tenant",
        "--org",
        ORG,
        "--email",
        "bench-holds@example.com",
        "--password",
        "bench-password-not-secret",
    )
    slug = out.strip().splitlines()[-1].strip()
    stamp = time.strftime("%Y%m%d%H%M%S")
    _manage(env, "topup", "--org", slug, "--currency", "CREDIT", "--amount", "1000000",
            "--reference", f"bench-holds-{stamp}")  # fmt: skip
    _manage(env, "create_key", "--org", slug, "--project", "bench", "--name", stamp)
    _django(env)
    from projects.models import ApiKey

    key = ApiKey.objects.filter(org__slug=slug).order_by("-pk").first()
    return key.org_id, key.project_id, key.pk


def _usage(request_id: str, project_id: int, key_id: int) -> dict:
    """What the gateway records for a settled request (routing.engine._usage_dict)."""
    return {
        "request_id": request_id,
        "project_id": project_id,
        "api_key_id": key_id,
        "kind": "api",
        "researcher_run_id": None,
        "endpoint": "chat.completions",
        "model": "bench-fast",
        "upstream": "bench-mock",
        "upstream_model": "mock-fast",
        "attempts": [
            {
                "upstream": "bench-mock",
                "model": "mock-fast",
                "status": "ok",
                "error": "",
                "latency_ms": 1,
            }  # fmt: skip
        ],
        "fallback": False,
        "wallet": "CREDIT",
        "prompt_tokens": 12,
        "completion_tokens": 20,
        "cached_tokens": 0,
        "estimated": False,
        "price_input": Decimal("0.10"),
        "price_output": Decimal("0.40"),
        "price_cached_input": Decimal("0.05"),
        "price_multiplier": Decimal("1"),
        "error": "",
        "stream": False,
        "latency_ms": 1,
    }


def worker(env, ids, concurrency, seconds, start_at, queue) -> None:
    _django(env)
    from django.conf import settings

    from routing.engine import _ledger_capture, _ledger_place

    org_id, project_id, key_id = ids
    latencies: list[float] = []
    errors: list[str] = []

    async def pairs(deadline: float) -> None:
        while time.time() < deadline:
            hold_id = uuid.uuid4()
            rid = f"bh_{hold_id.hex}"
            began = time.perf_counter()
            try:
                await _ledger_place(
                    hold_id=hold_id,
                    org_id=org_id,
                    currency="CREDIT",
                    amount=Decimal("0.0010000000"),
                    project_id=project_id,
                    api_key_id=key_id,
                    request_id=rid,
                    ttl=settings.HOLD_TTL_SECONDS,  # what routing.engine._hold_ttl starts from
                )
                await _ledger_capture(
                    hold_id=hold_id,
                    amount=Decimal("0.0000092000"),
                    usage=_usage(rid, project_id, key_id),
                )
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append(time.perf_counter() - began)

    async def main() -> None:
        # warm the connections and prepared statements outside the measured window
        await asyncio.gather(*(pairs(time.time() + 0.5) for _ in range(concurrency)))
        latencies.clear()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(pairs(start_at + seconds) for _ in range(concurrency)))

    import uvloop

    uvloop.run(main())
    queue.put((latencies, errors[:5], len(errors)))


def _cpu_seconds(procs) -> dict[str, float]:
    """CPU seconds used so far by the client processes and by every PostgreSQL backend of the
    bench database (read from /proc: PostgreSQL on this host, else the server figure is 0).
    On a shared machine CPU per pair is steadier than pairs per second."""
    import psycopg

    tick = os.sysconf("SC_CLK_TCK")

    def used(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            return 0.0

    try:
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
    except psycopg.Error:  # e.g. no connection slot left: the figure only, not the run
        pids = []
    return {
        "client": sum(used(p.pid) for p in procs),
        **{f"pg{pid}": used(pid) for (pid,) in pids},
    }


def measure(processes: int, concurrency: int, seconds: float) -> str:
    env = {**tokenforge_env(), "LOG_LEVEL": "WARNING"}
    ids = prepare(env)
    pending_sql = "SELECT count(*) FROM ledger_hold WHERE status = 'pending'"
    pending_before = db_count(DATABASE_URL, pending_sql)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 3.0 + processes  # every process warmed up and waiting
    procs = [
        ctx.Process(target=worker, args=(env, ids, concurrency, seconds, start_at, queue))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = _cpu_seconds(procs)
    time.sleep(max(0.0, start_at + seconds - time.time()))
    cpu_after = _cpu_seconds(procs)
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    latencies = [x for lat, _, _ in results for x in lat]
    n_errors = sum(n for _, _, n in results)
    samples = [e for _, errs, _ in results for e in errs][:3]
    rate = len(latencies) / seconds
    client_cpu = cpu_after["client"] - cpu_before["client"]
    server_cpu = sum(v - cpu_before.get(k, 0.0) for k, v in cpu_after.items() if k != "client")
    pairs_done = max(1, len(latencies))
    lat_sorted = sorted(latencies) or [0.0]
    p50 = statistics.median(lat_sorted) * 1000
    p99 = lat_sorted[min(len(lat_sorted) - 1, int(len(lat_sorted) * 0.99))] * 1000

    from django.db.models import Sum

    from ledger.models import Account, AccountKind, Hold, HoldStatus, Posting

    wallet = Account.objects.get(org_id=ids[0], currency="CREDIT", kind=AccountKind.WALLET)
    open_sum = Hold.objects.filter(wallet=wallet, status=HoldStatus.PENDING).aggregate(
        s=Sum("amount")
    )["s"] or Decimal(0)
    unbalanced = (
        Posting.objects.values("transaction_id")
        .annotate(s=Sum("amount"))
        .exclude(s=0)
        .filter(transaction__hold__wallet=wallet)
        .count()
    )
    pending_after = db_count(DATABASE_URL, pending_sql)
    verdict = "met" if rate >= 2000 else "**not met**"
    lines = [
        f"{processes} processes × {concurrency} concurrent pairs, {seconds:g} s, all on ONE "
        "wallet (and its project and key), through the gateway's own ledger path "
        "(`routing.engine`: holds placed, and captures made with their transaction, postings "
        "and full usage record, in batches of whatever arrived while the previous statement "
        "ran, one SQL statement per batch; each capture durable through the flush barrier "
        "before it returns; psycopg async connections). CPU per pair: the client processes, "
        "and the PostgreSQL backends of the bench database.",
        "",
        "| pairs | pairs/s | pair p50 ms | pair p99 ms | errors | client CPU ms/pair "
        "| PostgreSQL CPU ms/pair |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {len(latencies):,} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {n_errors} "
        f"| {client_cpu * 1000 / pairs_done:.3f} | {server_cpu * 1000 / pairs_done:.3f} |",
        "",
        f"Target: at least 2,000 pairs per second: {verdict}.",
        "",
        f"Ledger after the run: wallet held {wallet.held} = sum of its open holds {open_sum} "
        f"({'ok' if wallet.held == open_sum else 'MISMATCH'}); holds left pending "
        f"{(pending_after or 0) - (pending_before or 0):+d}; transactions whose postings do not "
        f"sum to zero: {unbalanced}.",
    ]
    if samples:
        lines += ["", "First errors: " + "; ".join(f"`{s}`" for s in samples)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Two client processes, like the two gateway workers: on 2 cores more client processes
    # only take CPU from the PostgreSQL backends that do the work being measured.
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-write", action="store_true", help="print, do not write the report")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    text = measure(args.processes, args.concurrency, args.seconds)
    text += f"\n\nMeasured {started} UTC with `bench/bench_holds.py`."
    print(text)
    if not args.no_write:
        write_section("holds", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
