"""Production mode end to end: dispatch → Redis broker → real Celery worker → channels-redis."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis
from asgiref.sync import async_to_sync
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


@pytest.fixture
def listener():
    """A channel in a fresh group on the channels-redis layer; left at teardown."""
    layer = get_channel_layer()
    group = ping_group()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    yield layer, group, channel
    async_to_sync(layer.group_discard)(group, channel)


async def receive_many(layer, channel: str, count: int) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), timeout=5) for _ in range(count)]


def test_dispatch_in_celery_mode_runs_ping_in_a_worker_process(celery_worker, listener):
    layer, group, channel = listener

    result = dispatch(ping, "tok-celery", group)

    [message] = async_to_sync(receive_many)(layer, channel, 1)
    pid = message["event"]["pid"]
    assert isinstance(result, AsyncResult)
    assert type(layer).__name__ == "RedisChannelLayer"
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
    layer, group, channel = listener

    for n in range(20):
        dispatch(ping, f"tok-{n}", group)

    messages = async_to_sync(receive_many)(layer, channel, 20)
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
