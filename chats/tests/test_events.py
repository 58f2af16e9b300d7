from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chats import events


def new_group() -> str:
    return events.system_group(f"test-{uuid.uuid4().hex}")


async def join(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def receive_many(layer, channel: str, count: int) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), timeout=5) for _ in range(count)]


def numbered(count: int) -> list[dict]:
    return [{"type": "N", "n": n} for n in range(count)]


def delivered(events_sent: list[dict]) -> list[dict]:
    return [{"type": events.HANDLER_TYPE, "event": event} for event in events_sent]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            events.run_group(uuid.UUID("5b0ff1e4-74c4-4a48-9a3c-0b8a0a6c2f11")),
            "run.5b0ff1e4-74c4-4a48-9a3c-0b8a0a6c2f11",
        ),
        (events.chat_group(42), "chat.42"),
        (events.system_group("triggers"), "system.triggers"),
    ],
)
def test_group_names_are_valid_channel_layer_groups(in_memory_channel_layer, name, expected):
    assert name == expected
    assert in_memory_channel_layer.require_valid_group_name(name) is True


async def test_apublish_delivers_the_event_to_every_member_of_the_group(in_memory_channel_layer):
    group = new_group()
    first = await join(in_memory_channel_layer, group)
    second = await join(in_memory_channel_layer, group)

    await events.apublish(group, {"type": "HELLO"})

    assert await receive_many(in_memory_channel_layer, first, 1) == delivered([{"type": "HELLO"}])
    assert await receive_many(in_memory_channel_layer, second, 1) == delivered([{"type": "HELLO"}])


async def test_publish_refuses_to_block_an_event_loop(in_memory_channel_layer):
    with pytest.raises(RuntimeError, match="apublish"):
        events.publish(new_group(), {"type": "HELLO"})


def test_publish_from_a_thread_goes_through_the_server_loop_in_order(
    in_memory_channel_layer, asgi_server
):
    group = new_group()
    channel = asgi_server.call(join(in_memory_channel_layer, group))

    for event in numbered(150):
        events.publish(group, event)

    received = asgi_server.call(receive_many(in_memory_channel_layer, channel, 150))
    assert received == delivered(numbered(150))


def test_apublish_on_a_private_loop_hops_to_the_server_loop(in_memory_channel_layer, asgi_server):
    # An embedded run may drive its own loop (asyncio.run on a task thread).
    group = new_group()
    channel = asgi_server.call(join(in_memory_channel_layer, group))

    async def run() -> None:
        for event in numbered(3):
            await events.apublish(group, event)

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    thread.join(timeout=5)

    received = asgi_server.call(receive_many(in_memory_channel_layer, channel, 3))
    assert received == delivered(numbered(3))


def test_publisher_uses_the_callers_path_for_the_in_memory_channel_layer(in_memory_channel_layer):
    group = new_group()
    channel = async_to_sync(join)(in_memory_channel_layer, group)

    with events.publisher() as pub:
        owns_loop = pub.owns_loop
        for event in numbered(5):
            pub.publish(group, event)

    assert owns_loop is False
    assert async_to_sync(receive_many)(in_memory_channel_layer, channel, 5) == delivered(
        numbered(5)
    )


@pytest.mark.integration
def test_publisher_sends_a_batch_from_one_loop_and_closes_its_redis_connections():
    # As in a Celery task: sync code, no server loop, a layer shared across processes.
    layer = get_channel_layer()
    group = new_group()
    # The follower joins and reads on one loop of its own (pub/sub channels belong to the
    # loop that subscribed them), as a web process's server loop would.
    with asyncio.Runner() as follower:
        channel = follower.run(join(layer, group))

        with events.publisher() as pub:
            loop = pub._loop
            for event in numbered(50):
                pub.publish(group, event)

        received = follower.run(receive_many(layer, channel, 50))
        follower.run(layer.group_discard(group, channel))

    assert type(layer).__module__.startswith("channels_redis.")
    assert loop.is_closed() is True
    assert loop not in layer._layers
    assert received == delivered(numbered(50))


async def test_apublish_many_sends_each_event_to_each_group_in_order(in_memory_channel_layer):
    layer = in_memory_channel_layer
    first, second = new_group(), new_group()
    a, b = await join(layer, first), await join(layer, second)

    await events.apublish_many([first, second], numbered(5))

    assert await receive_many(layer, a, 5) == delivered(numbered(5))
    assert await receive_many(layer, b, 5) == delivered(numbered(5))


@pytest.mark.integration
def test_apublish_many_pipelines_the_publishes_of_a_loop_in_order(monkeypatch):
    # As on a worker loop: several runs publish batches at once; they share round trips,
    # and every group still receives every run's events in order.
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisPubSubChannelLayer"
    groups = [new_group() for _ in range(3)]
    pipelines: list[int] = []
    execute = events._Pipeline._execute

    async def counting(pending):
        pipelines.append(len(pending))
        await execute(pending)

    monkeypatch.setattr(events._Pipeline, "_execute", staticmethod(counting))

    async def scenario():
        channels = [await join(layer, group) for group in groups]

        async def run(index: int) -> None:
            for start in range(0, 40, 8):  # five batches of eight events
                batch = [{"type": "N", "run": index, "n": n} for n in range(start, start + 8)]
                await events.apublish_many([groups[index], groups[2]], batch)

        await asyncio.gather(run(0), run(1))
        own = [await receive_many(layer, channels[i], 40) for i in (0, 1)]
        shared = await receive_many(layer, channels[2], 80)
        for group, channel in zip(groups, channels, strict=True):
            await layer.group_discard(group, channel)
        await events.aclose_connections()
        return own, shared

    own, shared = asyncio.run(scenario())

    for index in (0, 1):
        expected = [{"type": "N", "run": index, "n": n} for n in range(40)]
        assert own[index] == delivered(expected)
        assert [m["event"] for m in shared if m["event"]["run"] == index] == expected
    assert sum(pipelines) == 2 * 40 * 2  # every event to both of its groups
    assert len(pipelines) < 10  # ten batches, two runs at once: they shared round trips
