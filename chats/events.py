"""Channel-layer groups and the events sent to them: the only module that knows both.

Consumers join groups named here and receive ``{"type": HANDLER_TYPE, "event": {...}}``
messages (Channels calls the consumer's ``event_deliver`` method for them).

Publishing works from every place background work runs:

- async code (a consumer, a run on the server loop, a run inside ``asyncio.run`` in a
  Celery task): ``await apublish(group, event)``;
- sync code: ``publish(group, event)``. In the web process it hands the send to the
  server loop (the in-memory layer's queues belong to it) and waits for it; elsewhere
  (Celery worker, shell) it runs the send on a throwaway loop;
- many events from sync code without a server (Celery): ``with publisher() as pub:
  pub.publish(group, event)`` sends them all from one loop and closes the channel
  layer's Redis connections for that loop at the end, instead of paying a loop, a
  connection pool and its teardown per event.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from agentstore import dispatch
from agentstore.aio import settle

HANDLER_TYPE = "event.deliver"
# A sync publisher waits this long for the server loop before giving up on an event.
PUBLISH_TIMEOUT = 10.0

Event = dict[str, Any]


def run_group(run_id: Any) -> str:
    return f"run.{run_id}"


def chat_group(chat_id: Any) -> str:
    return f"chat.{chat_id}"


def run_groups(run_id: Any, chat_id: Any = None) -> list[str]:
    """Where a run's events are published: the run's group (SSE, one-off followers) and,
    for a chat run, the chat's group (every open tab of that chat)."""
    groups = [run_group(run_id)]
    if chat_id:
        groups.append(chat_group(chat_id))
    return groups


def run_event(run_id: Any, seq: int, payload: Event) -> Event:
    """A stored run event as it travels and is replayed: the AG-UI event (camelCase wire
    format) plus its per-run ``seq`` and ``runId``."""
    return {**payload, "seq": seq, "runId": str(run_id)}


def system_group(name: str) -> str:
    return f"system.{name}"


def ping_event(token: str, *, mode: str) -> Event:
    """Answers a ping: who handled it (process, thread, run mode)."""
    return {
        "type": "PING",
        "token": token,
        "pid": os.getpid(),
        "mode": mode,
        "thread": threading.current_thread().name,
    }


def _message(event: Event) -> dict[str, Any]:
    return {"type": HANDLER_TYPE, "event": event}


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _group_send(group: str, message: dict[str, Any]) -> None:
    await get_channel_layer().group_send(group, message)


class _Pipeline:
    """PUBLISH commands of every publisher on one event loop, sent as Redis pipelines.

    channels-redis publishes one message per round trip, under a lock per Redis host: a
    worker loop streaming many runs queues its publishes behind each other's round trips.
    Here every message the loop's publishers hand in while a pipeline is in flight goes out
    in the next one — one round trip for all of them, in the order they were handed in
    (so each run's events stay in order). Used for the channels-redis pub/sub layer only;
    the wire format is that layer's own (its group channel names and serializer), so its
    subscribers in the web processes receive the messages unchanged.
    """

    def __init__(self, loop_layer: Any) -> None:
        self._layer = loop_layer
        self._pending: list[tuple[Any, str, bytes]] = []
        self._waiters: list[asyncio.Future] = []
        self._task: asyncio.Task | None = None

    def send(self, groups: list[str], messages: list[dict[str, Any]]) -> asyncio.Future:
        serialize = self._layer.channel_layer.serialize
        for message in messages:
            data = serialize(message)
            for group in groups:
                channel = self._layer._get_group_channel_name(group)  # noqa: SLF001
                self._pending.append((self._layer._get_shard(channel), channel, data))  # noqa: SLF001
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return waiter

    async def _drain(self) -> None:
        try:
            while self._waiters:
                pending, self._pending = self._pending, []
                waiters, self._waiters = self._waiters, []
                error: BaseException | None = None
                try:
                    await self._execute(pending)
                except Exception as exc:  # noqa: BLE001 - handed to every waiter
                    error = exc
                settle(waiters, error)
        finally:
            self._task = None

    @staticmethod
    async def _execute(pending: list[tuple[Any, str, bytes]]) -> None:
        by_shard: dict[int, tuple[Any, list[tuple[str, bytes]]]] = {}
        for shard, channel, data in pending:
            by_shard.setdefault(id(shard), (shard, []))[1].append((channel, data))
        for shard, items in by_shard.values():
            shard._ensure_redis()  # noqa: SLF001
            pipe = shard._redis.pipeline(transaction=False)  # noqa: SLF001
            for channel, data in items:
                pipe.publish(channel, data)
            await pipe.execute()


def _pipeline() -> _Pipeline | None:
    """The running loop's pipeline, when the layer is channels-redis's pub/sub layer."""
    layer = get_channel_layer()
    if type(layer).__name__ != "RedisPubSubChannelLayer":
        return None
    loop_layer = layer._get_layer()  # noqa: SLF001 - one per loop, as the layer keeps it
    pipeline = getattr(loop_layer, "_agentstore_pipeline", None)
    if pipeline is None:
        pipeline = _Pipeline(loop_layer)
        loop_layer._agentstore_pipeline = pipeline  # noqa: SLF001
    return pipeline


async def apublish_many(groups: list[str], batch: list[Event]) -> None:
    """Send each event of ``batch`` to every group in ``groups``, in order, from async code
    on the loop that owns the layer's connections (a worker loop, or the server loop).

    With the channels-redis pub/sub layer the whole batch — and whatever other runs on
    this loop publish meanwhile — shares one pipelined round trip (:class:`_Pipeline`);
    otherwise each event goes through :func:`apublish`."""
    server = dispatch.server_loop()
    pipeline = _pipeline() if server is None or server is asyncio.get_running_loop() else None
    if pipeline is None:
        for event in batch:
            for group in groups:
                await apublish(group, event)
        return
    await pipeline.send(groups, [_message(event) for event in batch])


async def apublish(group: str, event: Event) -> None:
    """Send ``event`` to ``group`` from async code on any event loop."""
    message = _message(event)
    server = dispatch.server_loop()
    if server is None or server is asyncio.get_running_loop():
        await _group_send(group, message)
        return
    # A loop of our own inside the web process (a run under asyncio.run on a worker
    # thread): the in-memory layer can only be used from the server loop.
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_group_send(group, message), server))


def publish(group: str, event: Event) -> None:
    """Send ``event`` to ``group`` from sync code; returns once the layer has it."""
    if _running_loop() is not None:
        raise RuntimeError("publish() blocks; from async code use `await apublish(...)`.")
    message = _message(event)
    future = dispatch.run_on_server_loop(lambda: _group_send(group, message))
    if future is not None:
        # Waiting keeps events in order and surfaces errors to the publisher.
        future.result(timeout=PUBLISH_TIMEOUT)
        return
    async_to_sync(_group_send)(group, message)


async def aclose_connections() -> None:
    """Close the channel layer's connections that belong to the running loop.

    Call it before a loop you created ends. channels-redis keeps one connection pool per
    event loop (in ``_layers``; ``close_pools()`` would close every loop's, including the
    server loop's); the in-memory layer has none.
    """
    loop_layers = getattr(get_channel_layer(), "_layers", None)
    if loop_layers is None:
        return
    loop_layer = loop_layers.pop(asyncio.get_running_loop(), None)
    if loop_layer is not None:
        await loop_layer.flush()


class Publisher:
    """Publishes a batch of events from sync code; see :func:`publisher`."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def owns_loop(self) -> bool:
        return self._loop is not None

    def open(self) -> None:
        # One private loop only where nothing else can carry the sends: no server loop,
        # not inside async code, and a layer that crosses processes (the in-memory one
        # must be used from the loop its consumers run on).
        if (
            dispatch.server_loop() is None
            and _running_loop() is None
            and not isinstance(get_channel_layer(), InMemoryChannelLayer)
        ):
            self._loop = asyncio.new_event_loop()

    def publish(self, group: str, event: Event) -> None:
        if self._loop is None:
            publish(group, event)
            return
        self._loop.run_until_complete(_group_send(group, _message(event)))

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            loop.run_until_complete(aclose_connections())
        finally:
            loop.close()


@contextmanager
def publisher() -> Iterator[Publisher]:
    """``with publisher() as pub: pub.publish(group, event)`` for many events from sync code."""
    pub = Publisher()
    pub.open()
    try:
        yield pub
    finally:
        pub.close()
