"""WebSocket routes of the chats app (gathered by ``agentstore.routing``)."""

from __future__ import annotations

from django.urls import path

from chats.consumers import ChatConsumer

websocket_urlpatterns: list = [
    path("ws/chats/<uuid:chat_id>/", ChatConsumer.as_asgi(), name="ws-chat"),
]
