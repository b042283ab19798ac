"""What every mock upstream shares: an ASGI app served by uvicorn in a thread on 127.0.0.1,
and the fault-mode picker (a scripted next mode, a `fault-<mode>` model name, or `mode`)."""

from __future__ import annotations

import threading
import time

import uvicorn


class MockServer:
    """An ASGI app (`self.app`) served by uvicorn in a thread on an ephemeral port."""

    def __init__(self, *, mode: str = "ok") -> None:
        self.mode = mode
        self.script: list[str] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        # Hostile-upstream knobs: error bodies that echo the caller's credentials (as real
        # upstreams do: "Incorrect API key provided: sk-..."), and the only keys accepted
        # (None: any), so a revoked upstream key answers 401 to every request, probes too.
        self.echo_credentials = False
        self.valid_keys: set[str] | None = None

    def start(self):
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="error",
            lifespan="off",
            interface="asgi3",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("mock upstream did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)

    @staticmethod
    def credential_of(headers: dict) -> str:
        auth = headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:]
        return headers.get("x-api-key") or headers.get("x-goog-api-key") or ""

    def key_refused(self, headers: dict) -> bool:
        return self.valid_keys is not None and self.credential_of(headers) not in self.valid_keys

    def error_text(self, message: str, headers: dict) -> str:
        """`message`, plus the caller's credentials when echoing (what must never leak)."""
        if not self.echo_credentials:
            return message
        key = self.credential_of(headers)
        return (
            f"{message}: Incorrect API key provided: {key}. Your request had "
            f"Authorization: Bearer {key} and x-api-key: {key}"
        )

    def _mode_for(self, model: str) -> str:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        if model.startswith("fault-"):
            return model[len("fault-") :]
        return self.mode
