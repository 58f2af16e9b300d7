"""Per-run event output: sequence numbers, batching, store-then-publish (STYLE §3).

The translator calls :meth:`RunEmitter.emit` synchronously (it never waits); a writer task
drains the queue. For each batch it

1. merges consecutive deltas of the same stream (TEXT_MESSAGE_CONTENT, REASONING_MESSAGE_
   CONTENT per message id, TOOL_CALL_ARGS per tool call) into one event,
2. numbers the events (``seq`` = previous + 1, contiguous from 1 per run),
3. stores them in one ``bulk_create`` (one database round trip per batch, never per
   token),
4. publishes them to the run's groups (``chats.events.run_groups``) — with channels-redis,
   in one pipelined round trip shared with the other runs on the loop.

A batch of pure deltas waits until ~``flush_interval`` (40 ms) after the previous flush,
so a fast model does not flood the channel layer; any other event (a boundary) flushes at
once, and so does the first delta of each message (time to first token). A flush costs
CPU (an INSERT and a publish, each shared with the loop's other runs when they coincide:
``event_store``, ``events.apublish_many``), so when
many runs share one event loop the interval stretches to keep that loop's flushes under
``RUN_EVENT_FLUSHES_PER_SECOND`` (250): 40 ms up to 10 runs, 100 ms at 25 — deltas are
merged, nothing is dropped, and boundaries still go out at once. Publishing
failures are logged and do not fail the run: the events are stored, and clients resume
from storage. A storage failure stops the writer and is raised by :meth:`flush`.

Storing: in Celery mode on PostgreSQL a batch is written from the event loop itself
(``astore``, :mod:`chats.runtime.event_store`); otherwise through the ORM with
``loop.db_call`` on the thread that called ``run_execute``, which owns the run's database
connection (and, in tests, the test transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from agentstore import dispatch
from chats import events
from chats.models import Run, RunEvent
from chats.runtime import control
from chats.runtime.loop import db_call, worker_loop

logger = logging.getLogger(__name__)

DELTA_KEYS = {
    "TEXT_MESSAGE_CONTENT": "messageId",
    "REASONING_MESSAGE_CONTENT": "messageId",
    "TOOL_CALL_ARGS": "toolCallId",
}


async def _send(groups: list[str], batch: list[dict[str, Any]]) -> None:
    try:
        await events.apublish_many(groups, batch)
    except Exception:  # noqa: BLE001 - stored already; clients resume from storage
        seqs = f"{batch[0].get('seq')}–{batch[-1].get('seq')}" if batch else ""
        logger.warning("publishing events %s to %s failed", seqs, groups)


async def publish_to_groups(groups: list[str], batch: list[dict[str, Any]]) -> None:
    """Publish the events of ``batch`` to ``groups`` in order, from the right loop: the
    server loop's (embedded; ``events`` handles it) or the process's shared worker loop,
    whose channels-redis connections live as long as the process (``runtime.loop``) and
    whose runs' publishes share pipelined round trips (``events.apublish_many``)."""
    if dispatch.server_loop() is not None or isinstance(get_channel_layer(), InMemoryChannelLayer):
        await _send(groups, batch)
        return
    loop = worker_loop()
    if loop is asyncio.get_running_loop():
        await _send(groups, batch)
        return
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_send(groups, batch), loop))


# Emitters writing on each event loop (the worker loop is shared by a process's runs).
_active: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


class _Marker:
    def __init__(self, future: asyncio.Future, *, stop: bool = False) -> None:
        self.future = future
        self.stop = stop


def _delta_key(event: dict[str, Any]) -> tuple[str, str] | None:
    field = DELTA_KEYS.get(event.get("type", ""))
    return (event["type"], event.get(field, "")) if field else None


def coalesce(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive deltas of the same stream (order of everything else kept)."""
    merged: list[dict[str, Any]] = []
    for event in batch:
        key = _delta_key(event)
        if key is not None and merged and _delta_key(merged[-1]) == key:
            merged[-1] = {**merged[-1], "delta": merged[-1]["delta"] + event["delta"]}
        else:
            merged.append(event)
    return merged


def store_events(
    run_id: str, rows: list[tuple[int, dict[str, Any]]], run_updates: dict[str, Any]
) -> None:
    objs = [
        RunEvent(run_id=run_id, seq=seq, type=payload.get("type", ""), payload=payload)
        for seq, payload in rows
    ]
    if run_updates:
        with transaction.atomic():
            RunEvent.objects.bulk_create(objs)
            Run.objects.filter(pk=run_id).update(**run_updates)
    else:
        RunEvent.objects.bulk_create(objs)


class RunEmitter:
    def __init__(
        self,
        *,
        run_id: str,
        chat_id: str | None,
        last_seq: int,
        flush_interval: float = 0.04,
        store: Callable[..., None] = store_events,
        astore: Callable[[str, list[tuple[int, dict[str, Any]]]], Awaitable[None]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.groups = events.run_groups(run_id, chat_id)
        self.seq = last_seq
        self.flush_interval = flush_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store = db_call(store)  # on the run's thread; a pooled connection goes back
        # Writes from the event loop itself (chats.runtime.event_store), when available.
        self._astore = astore
        self._queue: asyncio.Queue[dict[str, Any] | _Marker] = asyncio.Queue()
        self._outbox: asyncio.Queue[list[tuple[int, dict[str, Any]]] | _Marker | None] = (
            asyncio.Queue()
        )
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._error: BaseException | None = None
        self._started_streams: set[tuple[str, str]] = set()
        self._last_flush = 0.0
        self._run_updates: dict[str, Any] = {}
        self.published = 0

    # --- producer side (sync, never blocks) ------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        _active[loop] = _active.get(loop, 0) + 1
        self._loop = loop
        self._writer = loop.create_task(self._run())

    def _interval(self) -> float:
        """The base interval, stretched when many runs share this event loop."""
        budget = control.setting("RUN_EVENT_FLUSHES_PER_SECOND", 250.0)
        return max(self.flush_interval, _active.get(self._loop, 1) / budget)

    def downstream_wait(self) -> float:
        """Seconds a text delta emitted now would wait before its batch is flushed (0 for
        the first delta of a message, which goes out at once). The model stream holds
        text back for that long (``integrations.llm.openai_stream.stream_hold``)."""
        if self._loop is None or not self._started_streams:
            return 0.0
        return max(0.0, self._last_flush + self._interval() - self._loop.time())

    def emit(self, event: dict[str, Any]) -> None:
        self._queue.put_nowait(event)
        if _delta_key(event) is None:
            self._wake.set()

    def update_run_with_next_write(self, **fields: Any) -> None:
        """Persist run fields together with the next stored batch (no extra round trip)."""
        self._run_updates.update(fields)

    # --- control ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until everything emitted so far is stored and published."""
        if self._writer is None or self._writer.done():
            self._raise_if_failed()
            return
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Marker(future))
        self._wake.set()
        await future
        self._raise_if_failed()

    async def close(self) -> None:
        """Flush and stop the writer."""
        if self._writer is None:
            return
        if not self._writer.done():
            future = asyncio.get_running_loop().create_future()
            self._queue.put_nowait(_Marker(future, stop=True))
            self._wake.set()
            await future
            await self._writer
        self._raise_if_failed()

    def next_seq(self) -> int:
        """Reserve the next sequence number (for an event stored by the caller)."""
        self.seq += 1
        return self.seq

    async def publish_stored(self, seq: int, payload: dict[str, Any]) -> None:
        """Publish an event the caller stored itself (the terminal event)."""
        await self._publish(seq, payload)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # --- writer -------------------------------------------------------------------------

    def _wait_for_more(self, batch: list[Any]) -> bool:
        """A batch of deltas of streams already under way waits for the interval."""
        for item in batch:
            if isinstance(item, _Marker):
                return False
            key = _delta_key(item)
            if key is None or key not in self._started_streams:
                return False
        return True

    def _drain(self, batch: list[Any]) -> None:
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        publisher = loop.create_task(self._publish_loop())
        try:
            await self._write_loop(loop)
        finally:
            _active[loop] = max(0, _active.get(loop, 1) - 1)
            self._outbox.put_nowait(None)
            await publisher

    async def _write_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            batch: list[Any] = [await self._queue.get()]
            self._drain(batch)
            while self._wait_for_more(batch):
                remaining = self._last_flush + self._interval() - loop.time()
                if remaining <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)
                self._drain(batch)
            payloads = [item for item in batch if not isinstance(item, _Marker)]
            markers = [item for item in batch if isinstance(item, _Marker)]
            if payloads and self._error is None:
                try:
                    await self._write(coalesce(payloads))
                except Exception as exc:  # the database is gone: stop, report at flush()
                    logger.exception("run %s: storing events failed", self.run_id)
                    self._error = exc
            self._last_flush = loop.time()
            for marker in markers:
                # Resolved by the publisher once everything before it is published.
                self._outbox.put_nowait(marker)
            if any(marker.stop for marker in markers):
                return

    async def _write(self, payloads: list[dict[str, Any]]) -> None:
        rows = []
        for payload in payloads:
            self.seq += 1
            rows.append((self.seq, payload))
            key = _delta_key(payload)
            if key is not None:
                self._started_streams.add(key)
        updates, self._run_updates = self._run_updates, {}
        if self._astore is not None and not updates:
            await self._astore(self.run_id, rows)
        else:
            await self._store(self.run_id, rows, updates)
        # Stored: now it may be published. Publishing runs alongside the next store.
        self._outbox.put_nowait(rows)

    async def _publish_loop(self) -> None:
        """Publishes stored batches in order while the writer stores the next ones."""
        while True:
            item = await self._outbox.get()
            if item is None:
                return
            if isinstance(item, _Marker):
                if not item.future.done():
                    item.future.set_result(None)
                continue
            try:
                await self._publish_batch(item)
            except Exception:  # noqa: BLE001 - never stall flush(); the events are stored
                logger.exception("run %s: publishing failed", self.run_id)

    async def _publish(self, seq: int, payload: dict[str, Any]) -> None:
        await self._publish_batch([(seq, payload)])

    async def _publish_batch(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        batch = [events.run_event(self.run_id, seq, payload) for seq, payload in rows]
        await publish_to_groups(self.groups, batch)
        self.published += len(batch)
