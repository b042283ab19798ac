"""Security tests share the gateway fixtures of tests/routing (mock upstreams)."""

from tests.routing.conftest import _mock_server, upstream  # noqa: F401
