"""The dispatcher's embedded paths, proven with the real ping task and channel layer.

Celery mode is proven against a real worker in ``tests/integration/test_celery_dispatch.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import uuid
from concurrent.futures import Future

import pytest
from asgiref.sync import async_to_sync
from celery import shared_task

from agentstore.dispatch import dispatch, server_loop
from chats import events
from chats.tasks import ping

TASK_THREAD = re.compile(r"agentstore-task_\d+")

_release = threading.Event()


@shared_task(name="tests.dispatch.wait_for_release")
def wait_for_release() -> str:
    _release.wait(timeout=5)
    return threading.current_thread().name


@shared_task(name="tests.dispatch.fail")
def fail() -> None:
    raise ValueError("boom")


@pytest.fixture
def release():
    _release.clear()
    yield _release
    _release.set()


def ping_group() -> str:
    return events.system_group(f"ping-{uuid.uuid4().hex}")


async def join(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def receive(layer, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout=5)


def test_dispatch_outside_a_server_runs_ping_inline(in_memory_channel_layer):
    group = ping_group()
    channel = async_to_sync(join)(in_memory_channel_layer, group)

    result = dispatch(ping, "tok-inline", group)

    message = async_to_sync(receive)(in_memory_channel_layer, channel)
    assert server_loop() is None
    assert result is None
    assert message == {
        "type": events.HANDLER_TYPE,
        "event": {
            "type": "PING",
            "token": "tok-inline",
            "pid": os.getpid(),
            "mode": "inline",
            "thread": threading.current_thread().name,
        },
    }


def test_dispatch_in_an_embedded_server_runs_ping_on_a_task_thread(
    in_memory_channel_layer, asgi_server
):
    group = ping_group()
    channel = asgi_server.call(join(in_memory_channel_layer, group))

    future = dispatch(ping, "tok-embedded", group)

    message = asgi_server.call(receive(in_memory_channel_layer, channel))
    thread = message["event"]["thread"]
    assert isinstance(future, Future)
    assert future.result(timeout=5) is None
    assert TASK_THREAD.fullmatch(thread)
    assert thread not in {asgi_server.thread.name, threading.current_thread().name}
    assert message == {
        "type": events.HANDLER_TYPE,
        "event": {
            "type": "PING",
            "token": "tok-embedded",
            "pid": os.getpid(),
            "mode": "embedded",
            "thread": thread,
        },
    }


def test_embedded_dispatch_returns_before_the_task_finishes(asgi_server, release):
    future = dispatch(wait_for_release)
    done_at_return = future.done()
    release.set()

    assert done_at_return is False
    assert TASK_THREAD.fullmatch(future.result(timeout=5))


async def test_dispatch_from_async_code_without_a_server_runs_in_the_background(release):
    future = dispatch(wait_for_release)
    done_at_return = future.done()
    release.set()

    thread = await asyncio.wait_for(asyncio.wrap_future(future), timeout=5)
    assert server_loop() is None
    assert done_at_return is False
    assert TASK_THREAD.fullmatch(thread)


def test_embedded_task_failure_is_logged_and_kept_on_the_future(asgi_server, caplog):
    with caplog.at_level(logging.ERROR, logger="agentstore.dispatch"):
        future = dispatch(fail)
        error = future.exception(timeout=5)

    assert isinstance(error, ValueError)
    assert str(error) == "boom"
    assert [r.getMessage() for r in caplog.records] == ["embedded task tests.dispatch.fail failed"]


def test_inline_task_failure_reaches_the_caller():
    with pytest.raises(ValueError, match="boom"):
        dispatch(fail)
