"""The lean handler of the token-authenticated streaming API (``agentstore.lean_asgi``),
through a real uvicorn server."""

from __future__ import annotations

import httpx
import pytest

from agentstore.lean_asgi import LEAN_MIDDLEWARE, InlineHooksMiddleware, LeanASGIHandler, is_lean
from agentstore.observability import RequestIdMiddleware
from chats.tests.interface_helpers import (  # noqa: F401 - fixtures
    api_key,
    server_fixture,
    stream_db_connections_closed_fixture,
)

pytestmark = pytest.mark.usefixtures("transactional_db", "stream_db_connections_closed")


@pytest.mark.parametrize(
    ("path", "lean"),
    [
        ("/v1/chat/completions", True),
        ("/v1/models", True),
        ("/api/v1/chats", False),
        ("/v1", False),
        ("/store/", False),
    ],
)
def test_only_the_token_api_takes_the_lean_path(path, lean):
    assert is_lean({"type": "http", "path": path}) is lean
    assert is_lean({"type": "websocket", "path": path}) is False


def test_the_lean_chain_is_async_all_the_way():
    from asgiref.sync import iscoroutinefunction

    assert [RequestIdMiddleware, InlineHooksMiddleware] == LEAN_MIDDLEWARE
    assert all(getattr(m, "async_capable", False) for m in LEAN_MIDDLEWARE)
    assert iscoroutinefunction(LeanASGIHandler()._middleware_chain)


def test_lean_responses_keep_the_security_headers_and_the_request_id(server, user):
    response = httpx.get(
        f"{server.url}/v1/models",
        headers={"Authorization": f"Bearer {api_key(user)}", "X-Request-ID": "abc123def456"},
    )

    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"]
    assert response.headers["X-Request-ID"] == "abc123def456"
    assert "Set-Cookie" not in response.headers  # no session on this path


def test_lean_errors_speak_the_requests_language(server):
    english = httpx.get(f"{server.url}/v1/models")
    chinese = httpx.get(f"{server.url}/v1/models", headers={"Accept-Language": "zh-Hans"})

    assert english.status_code == chinese.status_code == 401
    assert "You didn't provide an API key" in english.json()["error"]["message"]
    assert "API 密钥" in chinese.json()["error"]["message"]
    assert chinese.headers["Content-Language"] == "zh-hans"
    assert "Accept-Language" in chinese.headers["Vary"]
