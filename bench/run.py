"""`make bench`: tokenforge vs LiteLLM Proxy vs straight-to-the-mock, interleaved, in one run.

What it does (everything on 127.0.0.1, every process it starts is stopped by PID at the end,
also on Ctrl-C or an error; the whole run is bounded by `--budget` seconds, default 570):

1. starts the mock upstream (`bench/mock_upstream.py`) and measures its capacity directly;
2. prepares tokenforge: database `tf_benchrun` (created when missing, migrated), a routing file
   pointing at the mock (`apply_routing`), an organization (`create_tenant`), a grant
   (`topup`) and a key (`create_key`), then `scripts/serve.py` with the production settings and
   `WEB_CONCURRENCY` workers; when any step fails, or `/v1/chat/completions` does not answer
   200, tokenforge is reported as "not available" with the reason and the run goes on;
3. starts LiteLLM Proxy from its own virtualenv outside the project (`bench/litellm_setup.sh`
   creates it when missing), DB-less, with the same number of workers, pointed at the same mock;
4. for concurrency 1, 16 and 64, non-streaming (`wrk` + `bench/post.lua`) and streaming
   (`bench/stream_client.py`), runs the same load against direct, tokenforge and LiteLLM one
   after the other (interleaved per cell, so drift on the shared machine hits all three);
5. optional sections while time is left (LiteLLM stopped first): hold+capture pairs on one hot
   wallet (`bench/bench_holds.py`), 2,000 concurrent slow streams, memory flatness;
6. writes `docs/benchmarks.md` section by section (`bench/report.py`).

    make bench                                   # everything that fits in the budget
    .venv/bin/python bench/run.py --duration 4 --no-optional      # the tables only, fast
    .venv/bin/python bench/run.py --slow-streams [--target tokenforge|litellm]
    .venv/bin/python bench/run.py --memory [--memory-requests 100000] [--target ...]

Environment: `BENCH_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/tf_benchrun),
`BENCH_REDIS_URL` (default redis://127.0.0.1:6379/6), `LITELLM_VENV`
(default /tmp/tf-bench-litellm/venv), `WEB_CONCURRENCY` (default 2).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
BENCH = ROOT / "bench"
VAR = ROOT / "var" / "bench"
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tf_benchrun"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
LITELLM_VENV = Path(os.environ.get("LITELLM_VENV", "/tmp/tf-bench-litellm/venv"))
WORKERS = int(os.environ.get("WEB_CONCURRENCY", "2"))
LITELLM_MASTER_KEY = "sk-bench-master-key"
MOCK_SECRET = "sk-bench-mock-upstream"
CONCURRENCIES = (1, 16, 64)
TARGETS = ("direct", "tokenforge", "litellm")
# The model each target is asked for, and what it maps to on the mock.
MODELS = {
    "fast": {"direct": "mock-fast", "gateway": "bench-fast"},
    "stream": {"direct": "mock-20x0", "gateway": "bench-stream"},
    "slow": {"direct": "mock-50x200", "gateway": "bench-slow"},
}
STREAM_SHAPE = "20 content chunks, no delay between them, then a usage chunk and `[DONE]`"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- processes


@dataclass
class Processes:
    """Every process the run starts, each in its own session so its workers go with it."""

    started: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], *, env: dict | None = None) -> subprocess.Popen:
        VAR.mkdir(parents=True, exist_ok=True)
        logfile = open(VAR / f"{name}.log", "w")  # noqa: SIM115 - kept open with the process
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append((name, proc))
        log(f"started {name} (pid {proc.pid}), log var/bench/{name}.log")
        return proc

    def stop(self, proc: subprocess.Popen, *, timeout: float = 8.0) -> None:
        """SIGTERM the process (and the session it leads: its own workers), then SIGKILL."""
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        # Workers of a server that died first are still in its session: stop them too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name, proc in reversed(self.started):
            if proc.poll() is None:
                log(f"stopping {name} (pid {proc.pid})")
            self.stop(proc)
        self.started.clear()


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def worker_pids(server_pid: int) -> list[int]:
    """The processes serving requests: uvicorn's workers (children that are python), or the
    server itself when it runs a single process."""
    pids = []
    for child in children_of(server_pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in cmd:
            continue
        pids.append(child)
    return pids or [server_pid]


def http_get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def http_post(url: str, body: dict, *, key: str = "", timeout: float = 10.0) -> tuple[int, str]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(4000).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(4000).decode(errors="replace")
    except OSError as error:
        return 0, str(error)


def wait_until(check, *, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    base: str = ""  # http://127.0.0.1:PORT
    key: str = ""
    proc: subprocess.Popen | None = None
    available: bool = False
    note: str = ""
    commands: list[str] = field(default_factory=list)

    def model(self, kind: str) -> str:
        return MODELS[kind]["direct" if self.name == "direct" else "gateway"]


def start_mock(procs: Processes, processes: int) -> Target:
    port = free_port()
    cmd = [PY, str(BENCH / "mock_upstream.py"), "--port", str(port)]
    cmd += ["--processes", str(processes)]
    target = Target("direct", base=f"http://127.0.0.1:{port}")
    target.proc = procs.start("mock", cmd)
    target.commands.append(shlex.join(["python", "bench/mock_upstream.py", *cmd[2:]]))
    target.available = wait_until(lambda: http_get(f"{target.base}/v1/models") == 200, timeout=15)
    if not target.available:
        raise SystemExit("the mock upstream did not start; see var/bench/mock.log")
    return target


def _manage(env: dict, *args: str, timeout: float = 180) -> str:
    result = subprocess.run(
        [PY, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`manage.py {args[0]}` failed: " + " | ".join(tail))
    return result.stdout


def ensure_database(url: str) -> None:
    """Create the bench database when missing (through the `postgres` maintenance DB)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def db_count(url: str, sql: str) -> int | None:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(sql).fetchone()[0]
    except Exception:  # noqa: BLE001 - a missing table just means "cannot tell"
        return None


def routing_file(mock_base: str) -> str:
    price = {"input": "0.10", "output": "0.40", "cached_input": "0.05"}
    models = []
    for kind in ("fast", "stream", "slow"):
        models.append(
            {
                "name": MODELS[kind]["gateway"],
                "routes": [
                    {"upstream": "bench-mock", "model": MODELS[kind]["direct"], "price": price}
                ],
            }
        )
    spec = {
        "upstreams": [
            {
                "name": "bench-mock",
                "provider": "openai-compatible",
                "base_url": f"{mock_base}/v1",
                "api_key_env": "BENCH_MOCK_UPSTREAM_KEY",
                "wallet": "CREDIT",
                "timeout": 60,
            }
        ],
        "models": models,
    }
    VAR.mkdir(parents=True, exist_ok=True)
    path = VAR / "routing.yaml"
    path.write_text(json.dumps(spec, indent=2))  # JSON is YAML
    return str(path)


def tokenforge_env() -> dict:
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "WEB_CONCURRENCY": str(WORKERS),
        "BENCH_MOCK_UPSTREAM_KEY": MOCK_SECRET,
        # a fixed Fernet key (urlsafe base64 of 32 bytes) for upstream secrets at rest
        "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(
            hashlib.sha256(b"tokenforge-bench-only").digest()
        ).decode(),
        "LOG_LEVEL": "WARNING",
        # uvicorn's spawned workers import `config` by name: make the checkout importable even
        # when the editable install's finder is stale (as `make serve` from the repo root).
        "PYTHONPATH": str(ROOT),
    }


def start_tokenforge(procs: Processes, mock: Target) -> Target:
    target = Target("tokenforge")
    env = tokenforge_env()
    try:
        ensure_database(DATABASE_URL)
        _manage(env, "migrate", "--noinput", timeout=300)
        target.commands.append("python manage.py migrate --noinput")
        path = routing_file(mock.base)
        _manage(env, "apply_routing", path)
        target.commands.append("python manage.py apply_routing var/bench/routing.yaml")
        out = _manage(
            env,
            "create_tenant",
            "--org",
            "bench",
            "--email",
            "bench@example.com",
            "--password",
            "bench-password-not-secret",
        )
        slug = out.strip().splitlines()[-1].strip()
        target.commands.append(
            "python manage.py create_tenant --org bench --email bench@example.com --password ..."
        )
        stamp = time.strftime("%Y%m%d%H%M%S")
        _manage(
            env,
            "topup",
            "--org",
            slug,
            "--currency",
            "CREDIT",
            "--amount",
            "1000000",
            "--reference",
            f"bench-{stamp}",
        )
        target.commands.append(
            f"python manage.py topup --org {slug} --currency CREDIT --amount 1000000 --reference bench-..."
        )
        out = _manage(env, "create_key", "--org", slug, "--project", "bench", "--name", stamp)
        target.key = out.strip().splitlines()[-1].strip()
        target.commands.append(f"python manage.py create_key --org {slug} --project bench")
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ImportError) as error:
        target.note = f"setup failed: {error}"
        return target
    except Exception as error:  # noqa: BLE001 - e.g. PostgreSQL down: report, don't crash
        target.note = f"setup failed: {type(error).__name__}: {error}"
        return target
    port = free_port()
    cmd = [PY, "scripts/serve.py", "--port", str(port), "--workers", str(WORKERS)]
    target.base = f"http://127.0.0.1:{port}"
    target.proc = procs.start("tokenforge", cmd, env=env)
    target.commands.append(
        "DJANGO_SETTINGS_MODULE=config.settings.production DEBUG=false SECURE_SSL_REDIRECT=false "
        f"WEB_CONCURRENCY={WORKERS} python scripts/serve.py --port {port} --workers {WORKERS}"
    )
    if not wait_until(lambda: http_get(f"{target.base}/healthz") == 200, timeout=40):
        target.note = (
            "`scripts/serve.py` did not answer /healthz within 40 s (var/bench/tokenforge.log)"
        )
        procs.stop(target.proc)
        return target
    return check_gateway(procs, target)


def check_gateway(procs: Processes, target: Target) -> Target:
    """The gateway is available only when both a JSON and a streamed completion answer 200."""
    url = f"{target.base}/v1/chat/completions"
    body = {"model": target.model("fast"), "messages": [{"role": "user", "content": "hi"}]}
    status, text = http_post(url, body, key=target.key)
    if status == 200:
        status, text = http_post(
            url, {**body, "model": target.model("stream"), "stream": True}, key=target.key
        )
        if status == 200 and "[DONE]" not in text:
            status, text = -1, "stream did not end with [DONE]: " + text[-200:]
    if status != 200:
        target.note = f"/v1/chat/completions answered {status}: {text[:300]}"
        if target.proc is not None:
            procs.stop(target.proc)
        return target
    target.available = True
    return target


def start_litellm(procs: Processes, mock: Target, *, setup_timeout: float) -> Target:
    target = Target("litellm", key=LITELLM_MASTER_KEY)
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        log(f"creating LiteLLM's throwaway venv in {LITELLM_VENV} (bench/litellm_setup.sh)")
        try:
            subprocess.run(
                ["bash", str(BENCH / "litellm_setup.sh"), str(LITELLM_VENV)],
                check=True,
                timeout=setup_timeout,
                capture_output=True,
            )
        except (subprocess.SubprocessError, OSError) as error:
            target.note = f"bench/litellm_setup.sh failed: {error}"
            return target
    config = (BENCH / "litellm_config.yaml").read_text().replace("__MOCK_BASE__", f"{mock.base}/v1")
    VAR.mkdir(parents=True, exist_ok=True)
    config_path = VAR / "litellm_config.yaml"
    config_path.write_text(config)
    log_config = VAR / "litellm_log_config.json"
    log_config.write_text(json.dumps(QUIET_UVICORN_LOGGING))
    port = free_port()
    cmd = [str(binary), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", str(WORKERS), "--log_config", str(log_config)]
    env = {
        "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "DATABASE_URL": None,  # no database: LiteLLM's DB-less mode
    }
    target.base = f"http://127.0.0.1:{port}"
    target.proc = procs.start("litellm", cmd, env=env)
    target.commands.append(
        f"LITELLM_MASTER_KEY=... litellm --config var/bench/litellm_config.yaml --port {port} "
        f"--num_workers {WORKERS} --log_config var/bench/litellm_log_config.json"
    )
    if not wait_until(
        lambda: http_get(f"{target.base}/health/liveliness") == 200, timeout=90, interval=0.5
    ):
        target.note = (
            "LiteLLM did not answer /health/liveliness within 90 s (var/bench/litellm.log)"
        )
        procs.stop(target.proc)
        return target
    return check_gateway(procs, target)


# uvicorn's default logging without the per-request access log (tokenforge runs with
# access_log=False too, so both gateways write the same: nothing per request).
QUIET_UVICORN_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"default": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": "default",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "WARNING"},
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"handlers": [], "level": "ERROR", "propagate": False},
    },
}


# --------------------------------------------------------------------------- load


def run_wrk(target: Target, *, concurrency: int, duration: float, model: str) -> dict:
    threads = 1 if concurrency == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s"]
    cmd += ["--latency", "--timeout", "20s", "-s", str(BENCH / "post.lua"), target.base]
    env = {**os.environ, "BENCH_KEY": target.key, "BENCH_MODEL": model}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 40)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            seconds = raw["duration_us"] / 1e6
            errors = sum(v for k, v in raw.items() if k.startswith("errors_"))
            return {
                "requests": raw["requests"],
                "errors": errors,
                "rps": raw["requests"] / seconds if seconds else 0.0,
                "p50_ms": raw["p50_us"] / 1000,
                "p90_ms": raw["p90_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
            }
    raise RuntimeError(
        f"wrk printed no BENCH_JSON line: {result.stdout[-300:]} {result.stderr[-300:]}"
    )


def run_streams(
    target: Target,
    *,
    concurrency: int,
    duration: float,
    model: str,
    count: int = 0,
    timeout: float = 60.0,
    during=None,
) -> dict:
    cmd = [PY, str(BENCH / "stream_client.py"), "--url", f"{target.base}/v1/chat/completions"]
    cmd += ["--concurrency", str(concurrency), "--duration", str(duration), "--model", model]
    cmd += ["--count", str(count), "--key", target.key, "--timeout", str(timeout)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []
    try:
        while proc.poll() is None:
            if during is not None:
                samples.append(during())
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
            if time.monotonic() > getattr(run_streams, "hard_deadline", float("inf")):
                proc.kill()
        out, err = proc.communicate(timeout=duration + timeout + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            return {
                "requests": raw["requests"],
                "errors": raw["errors"],
                "error_kinds": raw["error_kinds"],
                "rps": raw["rps"],
                "p50_ms": raw["p50_us"] / 1000,
                "p90_ms": raw["p90_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
                "ttfb_p50_ms": raw["ttfb_p50_us"] / 1000,
                "ttfb_p90_ms": raw["ttfb_p90_us"] / 1000,
                "ttfb_p99_ms": raw["ttfb_p99_us"] / 1000,
                "samples": samples,
            }
    raise RuntimeError(f"stream_client printed no BENCH_JSON line: {err[-400:]}")


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def machine_section(targets: dict[str, Target], started: str, args: argparse.Namespace) -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "not found"

    def pyver(python: str, module: str) -> str:
        code = f"import importlib.metadata as m; print(m.version({module!r}))"
        return version([python, "-c", code])

    litellm_py = str(LITELLM_VENV / "bin" / "python")
    rows = [
        ("CPUs (`nproc`)", str(os.cpu_count())),
        ("CPU model", cpu),
        ("memory", mem),
        ("kernel", platform.release()),
        ("python (tokenforge)", platform.python_version()),
        ("django", pyver(PY, "django")),
        ("uvicorn", pyver(PY, "uvicorn")),
        ("aiohttp (upstream client)", pyver(PY, "aiohttp")),
        (
            "litellm (own venv)",
            pyver(litellm_py, "litellm") if Path(litellm_py).exists() else "not installed",
        ),
        (
            "python (litellm venv)",
            version([litellm_py, "-c", "import platform; print(platform.python_version())"]),
        ),
        ("postgres", version(["psql", "--version"])),
        ("redis", version(["redis-server", "--version"])),
        ("wrk", version(["wrk", "--version"])),
    ]
    lines = [
        f"Run started {started} UTC; `{shlex.join(['bench/run.py', *sys.argv[1:]])}`; "
        f"{args.duration:g} s per measurement, {WORKERS} worker processes per gateway.",
        "",
        "| what | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
        "Commands (all on 127.0.0.1, ports chosen free at run time):",
        "",
        "```",
    ]
    for target in targets.values():
        lines += [f"# {target.name}", *target.commands]
    lines += [
        "# non-streaming load (one wrk per cell; -t1 at concurrency 1, else -t2)",
        "BENCH_KEY=<key> BENCH_MODEL=<model> wrk -t2 -c64 -d<N>s --latency --timeout 20s -s bench/post.lua <base>",
        "# streaming load",
        "python bench/stream_client.py --url <base>/v1/chat/completions --concurrency 64 --duration <N> --model <model> --key <key>",
        "```",
        "",
        "Targets: `direct` is the mock itself (the limit); `tokenforge` holds and settles every "
        "request in PostgreSQL; `litellm` is LiteLLM Proxy without a database (master key only, "
        "no spend logs), uvicorn access logs off for both gateways.",
    ]
    for target in targets.values():
        if not target.available:
            lines += ["", f"**{target.name}: not available** — {target.note}"]
    return "\n".join(lines)


def mode_section(
    mode: str, results: dict, targets: dict[str, Target], settled: dict | None = None
) -> str:
    streaming = mode == "streaming"
    head = "| concurrency | target | req/s | p50 ms | p90 ms | p99 ms |"
    sep = "| ---: | --- | ---: | ---: | ---: | ---: |"
    if streaming:
        head += " TTFB p50 ms | TTFB p99 ms |"
        sep += " ---: | ---: |"
    head += " errors | overhead p50 ms |"
    sep += " ---: | ---: |"
    if streaming:
        head += " TTFB overhead p50 ms |"
        sep += " ---: |"
    lines = []
    if streaming:
        lines += [f"Each stream: {STREAM_SHAPE}. TTFB = first body byte.", ""]
    else:
        lines += ["Non-streaming chat completions (JSON body with `usage`).", ""]
    lines += [head, sep]
    ratio_lines = [
        "",
        "Ratios tokenforge / LiteLLM (req/s above 1 is better for tokenforge; overhead below 1):",
        "",
        "| concurrency | req/s | p50 | overhead p50 |"
        + (" TTFB overhead p50 |" if streaming else ""),
        "| ---: | ---: | ---: | ---: |" + (" ---: |" if streaming else ""),
    ]
    for conc in CONCURRENCIES:
        cell = results.get(conc, {})
        direct = cell.get("direct")
        for name in TARGETS:
            res = cell.get(name)
            if res is None:
                note = "not available" if not targets[name].available else "not measured"
                lines.append(f"| {conc} | {name} | {note} |" + " |" * (8 if streaming else 5))
                continue
            overhead = res["p50_ms"] - direct["p50_ms"] if direct and name != "direct" else None
            row = f"| {conc} | {name} | {fmt(res['rps'])} | {fmt(res['p50_ms'], 2)} | "
            row += f"{fmt(res['p90_ms'], 2)} | {fmt(res['p99_ms'], 2)} |"
            if streaming:
                row += f" {fmt(res['ttfb_p50_ms'], 2)} | {fmt(res['ttfb_p99_ms'], 2)} |"
            row += f" {res['errors']} | {fmt(overhead, 2) if overhead is not None else '–'} |"
            if streaming:
                tto = (
                    res["ttfb_p50_ms"] - direct["ttfb_p50_ms"]
                    if direct and name != "direct"
                    else None
                )
                row += f" {fmt(tto, 2) if tto is not None else '–'} |"
            lines.append(row)
            res["overhead_ms"] = overhead
            if streaming:
                res["ttfb_overhead_ms"] = tto
        tf, ll = cell.get("tokenforge"), cell.get("litellm")
        if tf and ll:
            row = (
                f"| {conc} | {ratio(tf['rps'], ll['rps'])} | {ratio(tf['p50_ms'], ll['p50_ms'])} | "
            )
            row += f"{ratio(tf.get('overhead_ms'), ll.get('overhead_ms'))} |"
            if streaming:
                row += f" {ratio(tf.get('ttfb_overhead_ms'), ll.get('ttfb_overhead_ms'))} |"
            ratio_lines.append(row)
        else:
            ratio_lines.append(
                f"| {conc} | – (tokenforge or LiteLLM not available) | | |"
                + (" |" if streaming else "")
            )
    lines += ratio_lines
    if settled:
        lines += ["", settled_line(settled)]
    return "\n".join(lines)


USAGE_SQL = "SELECT count(*) FROM ledger_usagerecord"
PENDING_SQL = "SELECT count(*) FROM ledger_hold WHERE status = 'pending'"


def settled_line(settled: dict) -> str:
    return (
        f"Settlement check (tokenforge, this mode, from PostgreSQL): {settled['ok']:,} requests "
        f"completed within the client's measuring windows, {settled['usage']:,} usage records "
        "written (a few more than completed is expected: requests still in flight when a "
        "window closed are settled too, just not counted by the client), "
        f"{settled['open_holds']:+,} change in holds left pending (should be 0)."
        if settled.get("usage") is not None
        else "Settlement check: usage records could not be counted."
    )


# --------------------------------------------------------------------------- sections


def measure_mock(mock: Target, duration: float) -> tuple[str, float]:
    res = run_wrk(mock, concurrency=64, duration=duration, model=MODELS["fast"]["direct"])
    streams = run_streams(mock, concurrency=64, duration=duration, model=MODELS["stream"]["direct"])
    return "\n".join(
        [
            "Measured straight against the mock (raw asyncio + httptools + uvloop, "
            f"{mock.commands[0].split('--processes ')[-1]} process(es)), with the same clients:",
            "",
            "| load | req/s | p50 ms | p99 ms | errors |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| wrk, non-streaming, concurrency 64 | {fmt(res['rps'])} | {fmt(res['p50_ms'], 2)} | "
            f"{fmt(res['p99_ms'], 2)} | {res['errors']} |",
            f"| stream_client, streaming, concurrency 64 | {fmt(streams['rps'])} | "
            f"{fmt(streams['p50_ms'], 2)} | {fmt(streams['p99_ms'], 2)} | {streams['errors']} |",
            "",
            "Both gateways serve far fewer requests per second than this, so the mock is never "
            "the bottleneck (the streaming figure is bounded by the Python client, which is "
            "also far above what a gateway streams).",
        ]
    ), res["rps"]


def slow_streams(target: Target, direct: Target, *, streams: int, chunks_model: str) -> str:
    """`streams` concurrent slow streams (50 chunks, 200 ms apart) through `target`."""
    if not target.available:
        return f"**{target.name}: not available** — {target.note}"
    log(f"slow streams: {streams} concurrent, direct")
    base = run_streams(
        direct,
        concurrency=streams,
        duration=30,
        count=streams,
        model=MODELS["slow"]["direct"],
        timeout=60,
    )
    pids = worker_pids(target.proc.pid)

    def sample() -> dict:
        return {pid: rss_mb(pid) for pid in worker_pids(target.proc.pid)}

    log(f"slow streams: {streams} concurrent, {target.name} (workers {pids})")
    res = run_streams(
        target,
        concurrency=streams,
        duration=30,
        count=streams,
        model=chunks_model,
        timeout=60,
        during=sample,
    )
    peak: dict[int, float] = {}
    for snap in res["samples"]:
        for pid, value in snap.items():
            if value is not None:
                peak[pid] = max(peak.get(pid, 0.0), value)
    after = sample()
    tto = res["ttfb_p50_ms"] - base["ttfb_p50_ms"]
    lines = [
        f"{streams:,} streams opened at once, each 50 chunks 200 ms apart (about 10 s), "
        f"through {target.name} (`scripts/serve.py`, {WORKERS} workers).",
        "",
        "| target | completed | errors | total p50 s | total p99 s | TTFB p50 ms | TTFB p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in (("direct", base), (target.name, res)):
        lines.append(
            f"| {name} | {r['requests']:,} | {r['errors']} | {r['p50_ms'] / 1000:.2f} | "
            f"{r['p99_ms'] / 1000:.2f} | {fmt(r['ttfb_p50_ms'], 2)} | {fmt(r['ttfb_p99_ms'], 2)} |"
        )
    if res["error_kinds"]:
        lines += [
            "",
            f"Error kinds ({target.name}): `{json.dumps(res['error_kinds'])}` "
            "(`TimeoutError`: the stream had not ended 60 s after it was sent).",
        ]
    tto99 = res["ttfb_p99_ms"] - base["ttfb_p99_ms"]
    stretch = res["p50_ms"] / base["p50_ms"] if base["p50_ms"] else 0.0
    top_mb = max([*peak.values(), *(v for v in after.values() if v is not None)], default=0.0)

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines += [
        "",
        f"TTFB overhead at p50 ({target.name} − direct): **{tto:.2f} ms**.",
        "",
        "Targets (issue 20): TTFB overhead at most 1 s at p50 "
        f"({tto / 1000:.2f} s): {mark(tto <= 1000)}; at most 3 s at p99 ({tto99 / 1000:.2f} s): "
        f"{mark(tto99 <= 3000)}; total duration at most 1.15× the direct run's at p50 "
        f"({stretch:.2f}×): {mark(stretch <= 1.15)}; 0 errors ({res['errors']}): "
        f"{mark(res['errors'] == 0)}; under 300 MB per worker ({top_mb:.0f} MB): "
        f"{mark(top_mb < 300)}.",
        "",
        "Resident memory per worker process (VmRSS from /proc/PID/status):",
        "",
        "| worker pid | peak during the run MB | after MB |",
        "| ---: | ---: | ---: |",
        *[
            f"| {pid} | {fmt(peak.get(pid))} | {fmt(after.get(pid))} |"
            for pid in sorted(set(peak) | set(after))
        ],
    ]
    return "\n".join(lines)


def run_holds_bench(*, seconds: float) -> None:
    """`bench/bench_holds.py` (hold+capture pairs on one hot wallet) writes its own section."""
    log("hot wallet: bench/bench_holds.py")
    cmd = [PY, str(BENCH / "bench_holds.py"), "--seconds", str(seconds)]
    env = {**os.environ, "BENCH_DATABASE_URL": DATABASE_URL, "BENCH_REDIS_URL": REDIS_URL}
    try:
        result = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 150
        )
    except subprocess.TimeoutExpired:
        log("  bench_holds.py timed out")
        return
    for line in result.stdout.splitlines():
        if line.startswith("| ") and "pairs" not in line and "---" not in line:
            log("  " + line)
    if result.returncode != 0:
        log("  bench_holds.py failed: " + (result.stderr or result.stdout)[-300:])


MEMORY_CONCURRENCY = 64


def memory_flatness(target: Target, *, first: int, total: int, time_budget: float) -> str:
    """RSS of each worker after `first` and after `total` non-streaming requests (c64: the
    most requests the time budget allows)."""
    if not target.available:
        return f"**{target.name}: not available** — {target.note}"
    model = target.model("fast")
    log(f"memory: up to {total:,} requests through {target.name} within {time_budget:.0f} s")
    done = 0
    errors = 0
    checkpoints: dict[int, dict[int, float | None]] = {}
    started = time.monotonic()
    rate = None
    for goal in (first, total):
        while done < goal:
            left = time_budget - (time.monotonic() - started)
            if left < 3:
                break
            remaining = goal - done
            chunk = min(left, 30.0, max(2.0, remaining / rate * 1.05) if rate else 5.0)
            res = run_wrk(target, concurrency=MEMORY_CONCURRENCY, duration=chunk, model=model)
            done += res["requests"]
            errors += res["errors"]
            rate = max(res["rps"], 1.0)
        checkpoints[done] = {pid: rss_mb(pid) for pid in worker_pids(target.proc.pid)}
        if done < goal:
            break
        log(f"memory: {done:,} requests so far")
    counts = sorted(checkpoints)
    lines = [
        f"Non-streaming requests at concurrency {MEMORY_CONCURRENCY} through {target.name}; "
        "RSS of each worker "
        f"(MB) after about {first:,} and after about {total:,} requests"
        f" ({errors} errors, {time.monotonic() - started:.0f} s).",
        "",
        "| worker pid | " + " | ".join(f"after {c:,} req" for c in counts) + " | change |",
        "| ---: | " + " | ".join("---:" for _ in counts) + " | ---: |",
    ]
    pids = sorted({pid for snap in checkpoints.values() for pid in snap})
    for pid in pids:
        values = [checkpoints[c].get(pid) for c in counts]
        change = (
            f"{(values[-1] - values[0]) / values[0] * 100:+.1f}%"
            if len(values) > 1 and values[0] and values[-1]
            else "–"
        )
        lines.append(f"| {pid} | " + " | ".join(fmt(v) for v in values) + f" | {change} |")
    if not counts or counts[-1] < total:
        lines += [
            "",
            f"Stopped at {counts[-1] if counts else 0:,} requests: the time budget ran out.",
        ]
    return "\n".join(lines)


def summary_section(
    started: str, targets: dict[str, Target], tables: dict, mock_rps: float | None
) -> str:
    lines = [f"Last `bench/run.py` run: {started} UTC."]
    if mock_rps:
        lines.append(f"Mock capacity (wrk, c64): {mock_rps:,.0f} req/s.")
    for name in ("tokenforge", "litellm"):
        if not targets[name].available:
            lines.append(f"- **{name}: not available** — {targets[name].note}")
    for mode, results in tables.items():
        for conc in CONCURRENCIES:
            cell = results.get(conc, {})
            parts = []
            for name in ("tokenforge", "litellm"):
                res = cell.get(name)
                if res and res.get("overhead_ms") is not None:
                    parts.append(
                        f"{name} {res['rps']:,.0f} req/s, overhead p50 {res['overhead_ms']:.2f} ms"
                    )
            if parts:
                lines.append(f"- {mode}, c{conc}: " + "; ".join(parts))
    lines += ["", "Targets of the performance issue measured by this run:", ""]
    lines += target_checks(tables)
    return "\n".join(lines)


def target_checks(tables: dict) -> list[str]:
    """Met / not met for the targets this run measures (issue 20's; the others have their own
    sections: slow streams, memory, the hot wallet)."""

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    checks = []
    for mode, results in tables.items():
        for conc in CONCURRENCIES:
            tf, ll = results.get(conc, {}).get("tokenforge"), results.get(conc, {}).get("litellm")
            if (
                tf
                and ll
                and tf.get("overhead_ms") is not None
                and ll.get("overhead_ms") is not None
            ):
                checks.append(
                    f"- {mode} c{conc}: overhead below LiteLLM's "
                    f"({tf['overhead_ms']:.2f} vs {ll['overhead_ms']:.2f} ms): "
                    + mark(tf["overhead_ms"] < ll["overhead_ms"])
                )
        tf1 = results.get(1, {}).get("tokenforge")
        if mode == "non-streaming" and tf1 and tf1.get("overhead_ms") is not None:
            checks.append(
                f"- {mode} c1: overhead at most 1 ms at p50 ({tf1['overhead_ms']:.2f} ms): "
                + mark(tf1["overhead_ms"] <= 1.0)
            )
        if mode == "streaming" and tf1 and tf1.get("ttfb_overhead_ms") is not None:
            checks.append(
                f"- {mode} c1: time-to-first-byte overhead at most 1.5 ms at p50 "
                f"({tf1['ttfb_overhead_ms']:.2f} ms): " + mark(tf1["ttfb_overhead_ms"] <= 1.5)
            )
        cell = results.get(64, {})
        if cell.get("tokenforge") and cell.get("litellm"):
            rps = cell["litellm"]["rps"]
            times = cell["tokenforge"]["rps"] / rps if rps else 0
            checks.append(
                f"- {mode} c64: at least 6× LiteLLM's requests per second ({times:.2f}×): "
                + mark(times >= 6)
            )
    return checks or ["- none: tokenforge or LiteLLM was not available."]


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description="tokenforge vs LiteLLM vs direct benchmark")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--budget", type=float, default=570.0, help="seconds for the whole run")
    parser.add_argument("--no-optional", action="store_true", help="tables only")
    parser.add_argument("--slow-streams", action="store_true", help="only the slow-streams section")
    parser.add_argument("--memory", action="store_true", help="only the memory-flatness section")
    parser.add_argument(
        "--target",
        choices=("tokenforge", "litellm"),
        default="tokenforge",
        help="gateway for --slow-streams / --memory",
    )
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--memory-first", type=int, default=10_000)
    parser.add_argument(
        "--memory-seconds",
        type=float,
        default=200.0,
        help="cap on the memory section inside a full run (--memory alone uses --budget)",
    )
    parser.add_argument("--skip", action="append", default=[], choices=("tokenforge", "litellm"))
    parser.add_argument("--mock-processes", type=int, default=1)
    args = parser.parse_args()

    begin = time.monotonic()
    deadline = begin + args.budget
    run_streams.hard_deadline = deadline + 60
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    procs = Processes()

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    only = args.slow_streams or args.memory
    try:
        mock = start_mock(procs, args.mock_processes)
        targets: dict[str, Target] = {"direct": mock}
        need = {args.target} if only else {"tokenforge", "litellm"}
        for name in ("tokenforge", "litellm"):
            if name in args.skip or name not in need:
                targets[name] = Target(name, note="skipped (--skip or not needed by this mode)")
                continue
            log(f"starting {name}")
            if name == "tokenforge":
                targets[name] = start_tokenforge(procs, mock)
            else:
                targets[name] = start_litellm(procs, mock, setup_timeout=300)
            status = (
                "available" if targets[name].available else f"NOT AVAILABLE: {targets[name].note}"
            )
            log(f"{name}: {status}")

        if only:
            target = targets[args.target]
            if args.slow_streams:
                write_section(
                    "slow-streams",
                    slow_streams(
                        target, mock, streams=args.streams, chunks_model=target.model("slow")
                    )
                    + f"\n\nMeasured {started} UTC with `bench/run.py --slow-streams --target {args.target}`.",
                )
            if args.memory:
                write_section(
                    "memory",
                    memory_flatness(
                        target,
                        first=args.memory_first,
                        total=args.memory_requests,
                        time_budget=deadline - time.monotonic(),
                    )
                    + f"\n\nMeasured {started} UTC with `bench/run.py --memory --target {args.target}`.",
                )
            log("done; see docs/benchmarks.md")
            return 0

        log("measuring the mock directly")
        mock_text, mock_rps = measure_mock(mock, min(args.duration, 5))
        write_section("mock", mock_text + f"\n\nMeasured {started} UTC.")

        # warm each gateway up (connections, caches, JIT-less but lazy imports)
        for name in ("tokenforge", "litellm"):
            if targets[name].available:
                run_wrk(
                    targets[name], concurrency=16, duration=2, model=targets[name].model("fast")
                )
                run_streams(
                    targets[name], concurrency=4, duration=1, model=targets[name].model("stream")
                )

        tables: dict[str, dict] = {"non-streaming": {}, "streaming": {}}
        settled: dict[str, dict] = {}
        for mode in ("non-streaming", "streaming"):
            usage_before = db_count(DATABASE_URL, USAGE_SQL)
            pending_before = db_count(DATABASE_URL, PENDING_SQL)
            ok = 0
            for conc in CONCURRENCIES:
                cell = tables[mode].setdefault(conc, {})
                for name in TARGETS:
                    target = targets[name]
                    if not target.available:
                        continue
                    if time.monotonic() > deadline - 30:
                        log("time budget nearly spent: stopping the tables here")
                        break
                    kind = "fast" if mode == "non-streaming" else "stream"
                    log(f"{mode} c{conc} {name}")
                    if mode == "non-streaming":
                        res = run_wrk(
                            target,
                            concurrency=conc,
                            duration=args.duration,
                            model=target.model(kind),
                        )
                    else:
                        res = run_streams(
                            target,
                            concurrency=conc,
                            duration=args.duration,
                            model=target.model(kind),
                        )
                    cell[name] = res
                    if name == "tokenforge":
                        ok += res["requests"]
                    log(
                        f"  {res['rps']:,.0f} req/s p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms errors {res['errors']}"
                    )
            if targets["tokenforge"].available:
                time.sleep(1.0)  # let the last settlements commit
                after = db_count(DATABASE_URL, USAGE_SQL)
                holds = db_count(DATABASE_URL, PENDING_SQL)
                settled[mode] = {
                    "ok": ok,
                    "usage": after - usage_before
                    if after is not None and usage_before is not None
                    else None,
                    "open_holds": holds - pending_before
                    if holds is not None and pending_before is not None
                    else 0,
                }
            slug = "nonstreaming" if mode == "non-streaming" else "streaming"
            write_section(slug, mode_section(mode, tables[mode], targets, settled.get(mode)))

        write_section("machine", machine_section(targets, started, args))
        write_section("summary", summary_section(started, targets, tables, mock_rps))

        if not args.no_optional:
            tf = targets["tokenforge"]
            ll = targets["litellm"]
            if ll.proc is not None:
                procs.stop(ll.proc)  # the sections below measure tokenforge alone
            if deadline - time.monotonic() > 120:
                run_holds_bench(seconds=8)
            else:
                log("no time left for the hot-wallet section")
            if not tf.available:
                note = f"**tokenforge: not available** — {tf.note}\n\n_Run `bench/run.py --slow-streams` / `--memory` once it answers._"
                write_section("slow-streams", note)
                write_section("memory", note)
            else:
                if deadline - time.monotonic() > 60:
                    write_section(
                        "slow-streams",
                        slow_streams(tf, mock, streams=args.streams, chunks_model=tf.model("slow"))
                        + f"\n\nMeasured {started} UTC by `make bench`.",
                    )
                else:
                    log("no time left for the slow-streams section")
                if deadline - time.monotonic() > 45:
                    write_section(
                        "memory",
                        memory_flatness(
                            tf,
                            first=args.memory_first,
                            total=args.memory_requests,
                            time_budget=min(args.memory_seconds, deadline - time.monotonic() - 15),
                        )
                        + f"\n\nMeasured {started} UTC by `make bench`.",
                    )
                else:
                    log("no time left for the memory section")
        log(f"done in {time.monotonic() - begin:.0f} s; see docs/benchmarks.md")
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()


if __name__ == "__main__":
    raise SystemExit(main())
