"""ASGI entry point: HTTP through Django, WebSockets through Channels.

The token-authenticated streaming API under ``/v1/`` goes through a lean Django handler
whose middleware never leaves the event loop (``agentstore.lean_asgi``); the rest of
HTTP through the full middleware stack.

The wrapper records the server's event loop so embedded-mode background work
(``agentstore.dispatch``) can be scheduled on it, and answers the lifespan protocol.
"""

from __future__ import annotations

import asyncio
import os
import sys

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentstore.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.websocket_auth import OriginOrTokenValidator, WebSocketAuthMiddleware  # noqa: E402
from agentstore import dispatch, heap  # noqa: E402
from agentstore.lean_asgi import LeanASGIHandler, is_lean  # noqa: E402
from agentstore.routing import websocket_urlpatterns  # noqa: E402
from chats.runtime.recovery import start_embedded_sweeper  # noqa: E402

lean_app = LeanASGIHandler()

router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginOrTokenValidator(
            WebSocketAuthMiddleware(URLRouter(websocket_urlpatterns))
        ),
    }
)


def _warm() -> None:
    """Import what the first requests would (the URL configuration and every view, the chat
    consumer) so it is part of the start-up heap that ``heap.settle`` freezes."""
    from django.urls import get_resolver

    import chats.consumers  # noqa: F401

    get_resolver().url_patterns  # noqa: B018 - imports the URL configuration


if not settings.TESTING:
    _warm()
    heap.settle("web")


async def _lifespan(receive, send) -> None:
    sweeper = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            dispatch.bind_server_loop(asyncio.get_running_loop())
            # Embedded mode has no Celery beat: sweep stuck runs from the server loop.
            sweeper = start_embedded_sweeper()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if sweeper is not None:
                sweeper.cancel()
            # Let embedded runs finish (and publish their last events) while the loop lives.
            await dispatch.drain(settings.EMBEDDED_SHUTDOWN_TIMEOUT)
            dispatch.unbind_server_loop(asyncio.get_running_loop())
            if "chats.mcp_server" in sys.modules:  # started lazily by the first /mcp request
                await sys.modules["chats.mcp_server"].shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if dispatch.server_loop() is None:
        dispatch.bind_server_loop(asyncio.get_running_loop())
    if scope["type"] == "http" and scope["path"] in ("/mcp", "/mcp/"):
        from chats import mcp_server  # the MCP endpoint (an ASGI app of the mcp SDK)

        return await mcp_server.app(scope, receive, send)
    if is_lean(scope):
        return await lean_app(scope, receive, send)
    return await router(scope, receive, send)
