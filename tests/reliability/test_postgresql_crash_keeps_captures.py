"""PostgreSQL crashing right after answers were sent loses no charge (issue 12, section 1).

24 concurrent answers (batched captures behind a flush barrier), then 6 one at a time (each a
lone capture with a synchronous commit). The test runs its own PostgreSQL 15 cluster (initdb in a temporary folder, its own port, as the
`postgres` user when run as root), serves the gateway from it (uvicorn, settling as `make
serve` does), crashes it with `pg_ctl stop -m immediate` the moment the last answer is in,
restarts it (crash recovery replays only what was flushed) and finds every answered request
charged and `reconcile` passing. A second test checks the flush barrier itself: once it
returns, the WAL is flushed past an asynchronous commit made before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from routing.db import FLUSH_BARRIER_SQL
from tests.mocks.openai_upstream import MockOpenAI
from tests.reliability.conftest import ROOT, free_port, start_server

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ANSWERS = 24
SEQUENTIAL = 6

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists(), reason="PostgreSQL 15 server binaries not installed"
)


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tf-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.user = ["runuser", "-u", "postgres", "--"]
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self.sql("CREATE DATABASE tf")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/tf"

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.user, str(PG_BIN / tool), *args], check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c fsync=on"
        )
        log = str(self.root / "server.log")
        self._pg("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def crash(self) -> None:
        """No checkpoint, no WAL flush: what a power cut or a killed postmaster leaves."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def sql(self, statement: str, dbname: str = "postgres"):
        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _django(cluster: Cluster, code: str, **env: str) -> str:
    """Run `code` in a fresh Django process on the cluster's database; its stdout."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": cluster.url,
        **env,
    }
    script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def cluster():
    made = Cluster()
    try:
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "TEST_DATABASE_URL": made.url,
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrate.returncode == 0, migrate.stderr
        yield made
    finally:
        made.remove()


@pytest.fixture(scope="module")
def mock_upstream():
    server = MockOpenAI().start()
    yield server
    server.stop()


def test_the_flush_barrier_flushes_the_wal_past_earlier_asynchronous_commits(cluster):
    """Measured on a cluster nobody else writes to (so only our barrier can flush)."""
    base = f"host=127.0.0.1 port={cluster.port} user=postgres dbname=tf"

    async def unflushed_after(barrier_sql: str, tries: int) -> int:
        lazy = await psycopg.AsyncConnection.connect(
            base + " options='-c synchronous_commit=off'", autocommit=True
        )
        sync = await psycopg.AsyncConnection.connect(
            base + " options='-c synchronous_commit=on'", autocommit=True
        )
        misses = 0
        try:
            for i in range(tries):
                # An asynchronous commit that wrote WAL, like a capture on the ledger's pool.
                await lazy.execute(
                    "INSERT INTO ledger_flushmark (backend_pid, flushes) VALUES (%s, 0)",
                    (-1 - i - tries * (barrier_sql == FLUSH_BARRIER_SQL),),
                )
                cur = await lazy.execute("SELECT pg_current_wal_insert_lsn()")
                committed = (await cur.fetchone())[0]
                await (await sync.execute(barrier_sql)).fetchone()
                cur = await sync.execute(
                    "SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (committed,)
                )
                misses += not (await cur.fetchone())[0]
        finally:
            await lazy.close()
            await sync.close()
        return misses

    assert asyncio.run(unflushed_after(FLUSH_BARRIER_SQL, 100)) == 0
    # The old barrier (`SELECT txid_current()` writes no WAL, so it committed lazily too).
    assert asyncio.run(unflushed_after("SELECT txid_current()", 20)) > 0


SETUP = """
import yaml
from io import StringIO
from pathlib import Path
from django.core.management import call_command

out = StringIO()
call_command("create_tenant", org="Crash", email="crash@example.com", password="pw-123456-x",
             stdout=out)
slug = out.getvalue().strip().splitlines()[-1]
call_command("topup", org=slug, currency="CREDIT", amount="100", reference="crash-1",
             stdout=StringIO())
routing = {
    "upstreams": [{"name": "relay", "provider": "openai-compatible", "base_url": BASE_URL,
                   "api_key_env": "K_RELAY", "wallet": "CREDIT", "timeout": 5}],
    "models": [{"name": "gpt-4o-mini", "routes": [
        {"upstream": "relay", "model": "gpt-4o-mini", "price": {"input": "1", "output": "1"}}]}],
}
path = Path(ROUTING_FILE)
path.write_text(yaml.safe_dump(routing))
call_command("apply_routing", str(path), stdout=StringIO())
out = StringIO()
call_command("create_key", org=slug, project="crash", stdout=out)
print(slug)
print(out.getvalue().strip().splitlines()[-1])
"""

CHECK = """
import json, sys
from decimal import Decimal
from ledger.models import Account, Hold, UsageRecord
from ledger.services.reconcile import reconcile

ids = json.loads(sys.stdin.read())
records = UsageRecord.objects.filter(request_id__in=ids)
wallet = Account.objects.get(org__slug=SLUG, currency="CREDIT", kind="wallet")
print(json.dumps({
    "settled": {r.request_id: str(r.cost) for r in records if r.status == "settled"},
    "pending_holds": Hold.objects.filter(status="pending").count(),
    "posted": str(wallet.posted),
    "reconcile_ok": reconcile().ok,
}))
"""


def test_answered_requests_stay_charged_when_postgresql_crashes_right_after(
    cluster, mock_upstream, tmp_path
):
    routing_file = tmp_path / "routing.yaml"
    setup = SETUP.replace("BASE_URL", repr(mock_upstream.base_url)).replace(
        "ROUTING_FILE", repr(str(routing_file))
    )
    slug, key = _django(cluster, setup, K_RELAY="sk-relay").strip().splitlines()[-2:]
    server = start_server(
        {"ROUTING_SETTLE_AFTER_RESPONSE": "true", "ROUTING_TABLE_CACHE_SECONDS": "5"},
        log_path=tmp_path / "server.log",
        database_url=cluster.url,
    )
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def ask() -> None:
        response = httpx.post(
            server.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        with lock:
            answers.append(response)

    try:
        threads = [threading.Thread(target=ask) for _ in range(ANSWERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # Then one at a time: a lone capture commits synchronously instead of waiting for a
        # flush barrier (routing/db.py), and must be just as much on disk.
        for _ in range(SEQUENTIAL):
            ask()
        cluster.crash()  # the moment the last answer is in
    finally:
        server.kill()
    assert [a.status_code for a in answers] == [200] * (ANSWERS + SEQUENTIAL), server.log()
    costs = {a.headers["x-request-id"]: a.headers["x-tokenforge-cost"] for a in answers}

    cluster.start()  # crash recovery
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django\ndjango.setup()\n" + CHECK.replace("SLUG", repr(slug)),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "TEST_DATABASE_URL": cluster.url,
        },
        input=json.dumps(list(costs)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    state = json.loads(check.stdout.strip().splitlines()[-1])
    settled = {rid: Decimal(cost) for rid, cost in state["settled"].items()}
    assert settled == {rid: Decimal(cost) for rid, cost in costs.items()}, (
        "an answered request lost its charge"
    )
    assert state["pending_holds"] == 0
    assert Decimal(state["posted"]) == Decimal(100) - sum(Decimal(c) for c in costs.values())
    assert state["reconcile_ok"]
    reconcile = subprocess.run(
        [sys.executable, "manage.py", "reconcile"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "TEST_DATABASE_URL": cluster.url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
