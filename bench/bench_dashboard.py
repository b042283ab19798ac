"""Dashboard pages with a large history: 1,000,000 usage records in PostgreSQL.

Fills one organization's history fast with a single `INSERT ... SELECT generate_series`
(usage records only: no matching transactions or postings, since the overview, usage and
ledger pages read usage records; the balance-drop page reads postings and is not measured
here), then measures p50/p95 of the overview, usage and ledger pages through Django's test
client (in process: the view, its queries and the template; no network), and writes its
section with `bench/report.py`'s `write_section` when that exists (else prints it).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tf_dashboard \
        .venv/bin/python bench/bench_dashboard.py [--rows 1000000] [--days 90] [--refill]

The database is migrated first; the bench organization is reused when it already holds the
requested number of rows (pass --refill to rebuild it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet",
    "claude-haiku",
    "gemini-pro",
    "gemini-flash",
    "deepseek-chat",
    "qwen-max",
    "glm-4",
    "moonshot-v1",
    "o3-mini",
    "embedding-small",
]
UPSTREAMS = ["openai-main", "anthropic", "gemini", "deepseek", "dashscope", "openrouter"]
PROJECTS = 10
KEYS_PER_PROJECT = 5
ORG_NAME = "bench-dashboard"
SAMPLES = 40
WARMUP = 5


def _setup_django(database_url: str) -> None:
    os.environ["TEST_DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/5")
    import django

    django.setup()


def _tenant():
    from accounts.models import Membership, Organization, Role, User
    from ledger.services.postings import wallets_open
    from projects.services import key_create, project_get_or_create

    user, _ = User.objects.get_or_create(email="bench-dashboard@example.com")
    org = Organization.objects.filter(name=ORG_NAME).first()
    if org is None:
        org = Organization.objects.create(name=ORG_NAME, slug=ORG_NAME)
        wallets_open(org=org)
        Membership.objects.create(user=user, org=org, role=Role.OWNER)
    keys = []
    for p in range(PROJECTS):
        project = project_get_or_create(org=org, name=f"bench-project-{p}")
        existing = list(project.api_keys.order_by("pk"))
        while len(existing) < KEYS_PER_PROJECT:
            existing.append(key_create(project=project, name=f"k{len(existing)}").api_key)
        keys.extend(existing[:KEYS_PER_PROJECT])
    return user, org, keys


def _fill(*, org, keys, rows: int, days: int) -> float:
    """Replace the org's usage records with `rows` spread evenly over the last `days` days."""
    from django.db import connection, transaction

    key_ids = ",".join(str(k.pk) for k in keys)
    project_ids = ",".join(str(k.project_id) for k in keys)
    models = ",".join(f"'{m}'" for m in MODELS)
    upstreams = ",".join(f"'{u}'" for u in UPSTREAMS)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        with transaction.atomic():
            # Usage records are append-only (a trigger refuses DELETE); these are synthetic
            # bench rows, so this one transaction skips triggers to replace them.
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("DELETE FROM ledger_usagerecord WHERE org_id = %s", [org.pk])
        # One statement; g drives every column deterministically (hash-like mixing via %).
        cursor.execute(
            f"""
            INSERT INTO ledger_usagerecord (
                request_id, org_id, project_id, api_key_id, kind, researcher_run_id, endpoint,
                model, upstream, upstream_model, attempts, fallback, wallet, prompt_tokens,
                completion_tokens, cached_tokens, estimated, price_input, price_output,
                price_cached_input, price_multiplier, cost, status, error, stream, latency_ms,
                hold_id, transaction_id, created_at)
            SELECT
                'bench-' || %(org)s || '-' || g,
                %(org)s,
                (ARRAY[{project_ids}])[1 + (g * 7) %% {len(keys)}],
                (ARRAY[{key_ids}])[1 + (g * 7) %% {len(keys)}],
                CASE WHEN g %% 20 = 0 THEN 'researcher' ELSE 'api' END,
                NULL,
                'chat.completions',
                (ARRAY[{models}])[1 + (g * 13) %% {len(MODELS)}],
                CASE WHEN g %% 33 = 0 THEN '' ELSE (ARRAY[{upstreams}])[1 + (g * 5) %% {len(UPSTREAMS)}] END,
                'upstream-model',
                '[]'::jsonb,
                g %% 17 = 0,
                CASE WHEN g %% 33 = 0 THEN '' WHEN g %% 3 = 0 THEN 'RMB' ELSE 'CREDIT' END,
                100 + g %% 900,
                20 + g %% 400,
                0,
                false,
                2.5, 10, 1.25, 1,
                CASE WHEN g %% 33 = 0 THEN 0 ELSE ((g %% 997) + 1) * 0.0000137 END,
                CASE WHEN g %% 33 = 0 THEN 'failed' ELSE 'settled' END,
                '',
                g %% 4 = 0,
                50 + g %% 2000,
                NULL,
                NULL,
                now() - (g::float8 / %(rows)s) * interval '{days} days'
            FROM generate_series(1, %(rows)s) AS g
            """,
            {"org": org.pk, "rows": rows},
        )
        cursor.execute("ANALYZE ledger_usagerecord")
    return time.perf_counter() - started


def _measure(client, url: str) -> dict:
    """Cold: the first request with an empty cache (per-day aggregates not cached yet)."""
    from django.core.cache import cache

    cache.clear()
    started = time.perf_counter()
    assert client.get(url).status_code == 200, url
    cold = (time.perf_counter() - started) * 1000
    for _ in range(WARMUP):
        assert client.get(url).status_code == 200, url
    timings = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    timings.sort()
    return {
        "p50": statistics.median(timings),
        "p95": timings[int(len(timings) * 0.95) - 1],
        "max": timings[-1],
        "cold": cold,
    }


def _database_create(database_url: str) -> None:
    """A fresh machine has no bench database yet: create it (once) on the same server."""
    import psycopg
    from psycopg import sql

    base, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--refill", action="store_true")
    args = parser.parse_args()
    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tf_dashboard"
    )
    _database_create(database_url)
    _setup_django(database_url)

    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from ledger.models import UsageRecord

    call_command("migrate", verbosity=0)
    user, org, keys = _tenant()
    have = UsageRecord.objects.for_org(org).count()
    fill_seconds = None
    if args.refill or have != args.rows:
        print(f"filling {args.rows:,} usage records over {args.days} days…", flush=True)
        fill_seconds = _fill(org=org, keys=keys, rows=args.rows, days=args.days)
        print(f"filled in {fill_seconds:.1f}s", flush=True)

    client = Client()
    client.force_login(user)
    ledger_url = reverse("ledger:ledger")
    from ledger.selectors_dashboard import LedgerFilter, keyset_page, requests_filtered

    first_page = keyset_page(qs=requests_filtered(org=org, flt=LedgerFilter()), cursor=None)
    pages = {
        "Overview": reverse("ledger:overview"),
        "Usage (last 30 days)": reverse("ledger:usage"),
        "Usage (one project, stacked by key)": reverse("ledger:usage")
        + f"?project={keys[0].project_id}&stack=key",
        "Ledger (first page)": ledger_url,
        "Ledger (next page, cursor)": f"{ledger_url}?{urlencode({'cursor': first_page.next_cursor})}",
        "Ledger (filtered: model + wallet + status)": f"{ledger_url}?model=glm-4&wallet=CREDIT&status=settled",
        "Ledger (filter matching nothing: worst case)": f"{ledger_url}?model=glm-4&wallet=RMB",
        "Ledger (filtered: one key)": f"{ledger_url}?key={keys[3].pk}",
    }
    results = {name: _measure(client, url) for name, url in pages.items()}
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'ledger_usagerecord' ORDER BY 1"
        )
        indexes = [row[0].split(" USING ", 1)[1] for row in cursor.fetchall()]

    lines = [
        f"{args.rows:,} usage records of one organization spread over the last {args.days} days "
        f"({len(keys)} keys in {PROJECTS} projects, {len(MODELS)} models, both wallets, 5% "
        "researcher, 3% failed), filled by one `INSERT ... SELECT generate_series` "
        "(usage records only, no matching transactions/postings)"
        + (f" in {fill_seconds:.1f}s" if fill_seconds else "")
        + f". Each page requested {SAMPLES} times after {WARMUP} warm-up requests through "
        "Django's test client in one process (view + queries + template, no network), "
        "PostgreSQL on the same machine.",
        "",
        "| page | p50 (ms) | p95 (ms) | max (ms) | under 300 ms at p95 | cold, empty cache (ms) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, r in results.items():
        verdict = "yes" if r["p95"] < 300 else "**no**"
        lines.append(
            f"| {name} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {verdict} "
            f"| {r['cold']:.0f} |"
        )
    lines += [
        "",
        "Overview and usage read per-day aggregates: closed days (UTC) are computed once in one "
        "grouped query and cached in Redis (they never change), today's rows are queried live "
        "through the `(org, created_at)` index. The cold column is the first request after "
        "the cache is emptied (the price paid once per organization and range). The ledger "
        "pages seek on `(created_at, id)` with no COUNT(*) and no OFFSET.",
        "",
        "Indexes on the usage records table during the run: "
        + "; ".join(f"`{index}`" for index in indexes)
        + ".",
    ]
    body = "\n".join(lines)
    try:
        from bench.report import write_section
    except ImportError:
        print("bench/report.py not found; the section follows:\n")
        print("## Dashboard pages with 1,000,000 usage records\n")
        print(body)
    else:
        write_section("Dashboard pages with 1,000,000 usage records", body)
        print(body)
    return 0 if all(r["p95"] < 300 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
