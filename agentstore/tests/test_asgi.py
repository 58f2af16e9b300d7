"""The ASGI entry point binds its event loop for embedded background work."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from celery import shared_task

from agentstore import dispatch
from agentstore.asgi import application
from tests.fixtures.servers import run_asgi_server

_release = threading.Event()


@shared_task(name="tests.asgi.wait_for_release")
def wait_for_release() -> None:
    _release.wait(timeout=5)


class Lifespan:
    """Drives the lifespan protocol the way uvicorn does."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.sent: list[dict] = []
        self.started = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            self.started.set()

    async def startup(self) -> None:
        self.task = asyncio.create_task(
            application({"type": "lifespan"}, self.inbox.get, self.send)
        )
        await self.inbox.put({"type": "lifespan.startup"})
        await asyncio.wait_for(self.started.wait(), timeout=5)

    async def shutdown(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self.task, timeout=5)


@pytest.fixture
def release():
    _release.clear()
    yield _release
    _release.set()


@pytest.fixture
def unbind_after():
    yield
    dispatch.bind_server_loop(None)


async def test_lifespan_binds_the_loop_at_startup_and_unbinds_it_at_shutdown(unbind_after):
    lifespan = Lifespan()

    await lifespan.startup()
    bound = dispatch.server_loop()
    await lifespan.shutdown()

    assert bound is asyncio.get_running_loop()
    assert dispatch.server_loop() is None
    assert lifespan.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


async def test_shutdown_lets_running_embedded_tasks_finish(unbind_after, release):
    lifespan = Lifespan()
    await lifespan.startup()
    future = dispatch.dispatch(wait_for_release)
    asyncio.get_running_loop().call_later(0.2, release.set)

    await lifespan.shutdown()

    assert future.done() is True
    assert lifespan.sent[-1] == {"type": "lifespan.shutdown.complete"}


async def test_first_request_binds_the_loop_when_the_server_has_no_lifespan(unbind_after):
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/healthz")

    assert response.status_code == 200
    assert dispatch.server_loop() is asyncio.get_running_loop()


async def current_thread_name() -> str:
    return threading.current_thread().name


def test_uvicorn_serves_the_application_on_a_bound_loop_until_it_stops():
    with run_asgi_server() as server:
        response = server.get("/healthz")
        bound = dispatch.server_loop()
        loop_thread = server.call(current_thread_name())

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert bound is server.loop
    assert loop_thread == "asgi-server"
    assert dispatch.server_loop() is None
