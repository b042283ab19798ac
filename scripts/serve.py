"""Production ASGI server: uvicorn with several worker processes (`make serve`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

ROOT = Path(__file__).resolve().parent.parent
# `python scripts/serve.py` puts scripts/ first on sys.path, not the checkout: make `config`
# importable here and in the spawned workers (they inherit sys.path and PYTHONPATH), even when
# the editable install's finder is missing or stale (a clean clone before `make install`).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    # Non-streamed requests commit their capture right after the response is sent, inside the
    # same request (docs/billing.md): the client does not wait for the commit.
    os.environ.setdefault("ROUTING_SETTLE_AFTER_RESPONSE", "true")
    # X-Forwarded-For/-Proto are trusted only from the proxies listed (docs/scaling.md); by
    # default from none, so a client cannot choose the address the IP allow-list sees.
    forwarded = os.environ.get("FORWARDED_ALLOW_IPS", "").strip()
    from config.server import http_protocol

    uvicorn.run(
        "config.asgi:application",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        # httptools with a bound on slow request headers (config/server.py).
        http=http_protocol("httptools"),
        proxy_headers=bool(forwarded),
        forwarded_allow_ips=forwarded or None,
        # Only to start each worker's listener of the pushed state (routing/asgi.py).
        lifespan="on",
        access_log=False,
        timeout_keep_alive=30,
        # Thousands of clients may connect at once (2,000 streams in the benchmark): with the
        # default 2048 the kernel drops SYNs and those clients wait 1-30 s to retransmit.
        backlog=int(os.environ.get("BACKLOG", "8192")),
    )


if __name__ == "__main__":
    main()
