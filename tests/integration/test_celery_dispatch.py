"""Production mode end to end: dispatch → Redis broker → real Celery worker → channels-redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery.result import AsyncResult
from channels.layers import get_channel_layer
from django.conf import settings

from agentstore.dispatch import dispatch
from chats import events
from chats.tasks import ping
from tests.fixtures.servers import process_alive, purge_queue_state

pytestmark = pytest.mark.integration


def ping_group() -> str:
    return events.system_group(f"ping-{uuid.uuid4().hex}")


async def receive_many(layer, channel: str, count: int) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), timeout=5) for _ in range(count)]


@dataclass
class Listener:
    """A channel in a fresh group, joined and read on one event loop: pub/sub channels and
    groups belong to the loop that subscribed them."""

    runner: asyncio.Runner
    layer: Any
    group: str
    channel: str

    def receive(self, count: int) -> list[dict]:
        return self.runner.run(receive_many(self.layer, self.channel, count))


async def join(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


@pytest.fixture
def listener() -> Iterator[Listener]:
    layer = get_channel_layer()
    group = ping_group()
    with asyncio.Runner() as runner:  # closing its loop closes the layer's connections
        channel = runner.run(join(layer, group))
        yield Listener(runner, layer, group, channel)
        runner.run(layer.group_discard(group, channel))


def test_dispatch_in_celery_mode_runs_ping_in_a_worker_process(celery_worker, listener):
    result = dispatch(ping, "tok-celery", listener.group)

    [message] = listener.receive(1)
    pid = message["event"]["pid"]
    assert isinstance(result, AsyncResult)
    assert type(listener.layer).__module__.startswith("channels_redis.")
    assert pid != os.getpid()
    assert pid in celery_worker.child_pids()
    assert message == {
        "type": events.HANDLER_TYPE,
        "event": {
            "type": "PING",
            "token": "tok-celery",
            "pid": pid,
            "mode": "celery",
            "thread": "MainThread",
        },
    }


def test_worker_publishes_many_events_without_event_loop_errors(celery_worker, listener):
    for n in range(20):
        dispatch(ping, f"tok-{n}", listener.group)

    messages = listener.receive(20)
    tokens = sorted(m["event"]["token"] for m in messages)
    assert tokens == sorted(f"tok-{n}" for n in range(20))
    assert {m["event"]["pid"] for m in messages} <= set(celery_worker.child_pids())
    assert "Event loop is closed" not in celery_worker.log_text()
    assert "Traceback" not in celery_worker.log_text()


def test_killed_worker_leaves_no_processes(celery_worker):
    pids = [celery_worker.pid, *celery_worker.child_pids()]

    celery_worker.kill()

    assert len(pids) == 3
    assert [pid for pid in pids if process_alive(pid)] == []


def test_purge_removes_tasks_no_worker_has_taken(celery_worker_factory):
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    dispatch(ping, "never-delivered", ping_group())
    queued = client.llen(celery_worker_factory.queue)

    purge_queue_state(celery_worker_factory.queue)

    assert queued == 1
    assert client.llen(celery_worker_factory.queue) == 0
    client.close()
