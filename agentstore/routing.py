"""WebSocket URL patterns of every app, gathered in one place for the ASGI router."""

from __future__ import annotations

from chats.routing import websocket_urlpatterns as chat_patterns

websocket_urlpatterns = [*chat_patterns]
