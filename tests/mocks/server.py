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

    def _mode_for(self, model: str) -> str:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        if model.startswith("fault-"):
            return model[len("fault-") :]
        return self.mode
