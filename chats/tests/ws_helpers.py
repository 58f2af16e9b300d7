"""Driving the chat WebSocket in tests: the real ASGI application (origin check, auth,
routing) through ``WebsocketCommunicator``, a small socket wrapper, and clean-up that waits
for runs and closes the consumers' database connections before the test database goes."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from agentstore import dispatch
from chats import consumers
from chats.models import Chat

ORIGIN = (b"origin", b"http://testserver")
TERMINAL = frozenset({"RUN_FINISHED", "RUN_ERROR"})


class Socket:
    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.comm = communicator
        self.connected: dict[str, Any] = {}

    async def send(self, **frame: Any) -> None:
        await self.comm.send_json_to(frame)

    async def recv(self, wait: float = 20) -> dict[str, Any]:
        return await self.comm.receive_json_from(timeout=wait)

    async def expect(self, kind: str) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["type"] == kind, frame
        return frame

    async def events(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` run events (frames with a ``seq``)."""
        got: list[dict[str, Any]] = []
        while len(got) < count:
            frame = await self.recv()
            if "seq" in frame:
                got.append(frame)
        return got

    async def until_terminal(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Run events up to and including the terminal one, and the other frames seen."""
        got: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        while True:
            frame = await self.recv()
            if "seq" not in frame:
                others.append(frame)
                continue
            got.append(frame)
            if frame["type"] in TERMINAL:
                return got, others

    async def close(self) -> None:
        await self.comm.disconnect()


class Sockets:
    """Opens authenticated sockets on chats; :meth:`close_all` at the end of a test."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.opened: list[Socket] = []

    async def __call__(
        self, chat: Chat, token: str, *, headers: list[tuple[bytes, bytes]] | None = None
    ) -> Socket:
        comm = WebsocketCommunicator(
            self.app, f"/ws/chats/{chat.pk}/?token={token}", headers=headers or [ORIGIN]
        )
        connected, _ = await comm.connect(timeout=10)
        assert connected
        socket = Socket(comm)
        self.opened.append(socket)
        socket.connected = await socket.expect("CONNECTED")
        return socket

    async def close_all(self) -> None:
        for socket in self.opened:
            await socket.close()
        # Embedded runs execute on task threads: let them end before the database is
        # flushed, then close the connections the sockets' database threads hold.
        await asyncio.to_thread(dispatch.wait_for_pending, 30)
        await asyncio.to_thread(consumers.close_db_executor)
        # The auth middleware looks tokens up on asgiref's shared thread: close that too.
        await sync_to_async(connections.close_all)()


def text_of(frames: list[dict[str, Any]]) -> str:
    """The answer reassembled from its TEXT_MESSAGE_CONTENT deltas."""
    return "".join(f["delta"] for f in frames if f["type"] == "TEXT_MESSAGE_CONTENT")
