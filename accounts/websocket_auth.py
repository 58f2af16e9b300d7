"""WebSocket authentication: the Django session, or a token for non-browser clients.

Token clients send ``Authorization: Bearer <jwt|sk-…>`` (or ``?token=`` for browsers'
WebSocket API, which cannot set headers). Resolution of tokens is done by
``accounts.tokens.user_for_token``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async


@database_sync_to_async
def _user_for_token(token: str):
    from accounts.tokens import user_for_token

    return user_for_token(token)


class _TokenMiddleware:
    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        token = ""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                raw = value.decode("latin-1")
                if raw.lower().startswith("bearer "):
                    token = raw[7:].strip()
        if not token:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            token = (query.get("token") or [""])[0]
        if token:
            user = await _user_for_token(token)
            if user is not None:
                scope = {**scope, "user": user}
        return await self.inner(scope, receive, send)


def WebSocketAuthMiddleware(inner):  # noqa: N802 - mirrors channels' AuthMiddlewareStack
    # Session auth first; a valid token then overrides the (possibly anonymous) user.
    return AuthMiddlewareStack(_TokenMiddleware(inner))


class OriginOrTokenValidator:
    """Origin check for WebSockets that lets header-token clients without an Origin in.

    Browsers always send ``Origin`` on a WebSocket handshake, so cross-site WebSocket
    hijacking is stopped by checking it (Channels' AllowedHostsOriginValidator). A
    non-browser client (SDK, CLI) sends no Origin but authenticates with an
    ``Authorization`` header, which a hostile page cannot attach — so a handshake with
    no Origin and a bearer header is allowed; with an Origin, the origin must match.
    """

    def __init__(self, inner) -> None:
        from channels.security.websocket import AllowedHostsOriginValidator

        self.inner = inner
        self.checked = AllowedHostsOriginValidator(inner)

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        has_origin = b"origin" in headers
        has_bearer = headers.get(b"authorization", b"").lower().startswith(b"bearer ")
        if not has_origin and has_bearer:
            return await self.inner(scope, receive, send)
        return await self.checked(scope, receive, send)
