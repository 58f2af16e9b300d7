"""Per-run event output: sequence numbers, batching, store-then-publish (STYLE §3).

The translator calls :meth:`RunEmitter.emit` synchronously (it never waits); a writer task
drains the queue. For each batch it

1. merges consecutive deltas of the same stream (TEXT_MESSAGE_CONTENT, REASONING_MESSAGE_
   CONTENT per message id, TOOL_CALL_ARGS per tool call) into one event,
2. numbers the events (``seq`` = previous + 1, contiguous from 1 per run),
3. stores them in one ``bulk_create`` (one database round trip per batch, never per
   token),
4. publishes each to the run's groups (``chats.events.run_groups``).

A batch of pure deltas waits until ~``flush_interval`` (40 ms) after the previous flush,
so a fast model does not flood the channel layer; any other event (a boundary) flushes at
once, and so does the first delta of each message (time to first token). Publishing
failures are logged and do not fail the run: the events are stored, and clients resume
from storage. A storage failure stops the writer and is raised by :meth:`flush`.

Database work is done through ``sync_to_async`` (thread-sensitive): under
``async_to_sync`` it runs on the thread that called ``run_execute``, which owns the run's
database connection (and, in tests, the test transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from chats import events
from chats.models import Run, RunEvent

logger = logging.getLogger(__name__)

DELTA_KEYS = {
    "TEXT_MESSAGE_CONTENT": "messageId",
    "REASONING_MESSAGE_CONTENT": "messageId",
    "TOOL_CALL_ARGS": "toolCallId",
}


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
    ) -> None:
        self.run_id = run_id
        self.groups = events.run_groups(run_id, chat_id)
        self.seq = last_seq
        self.flush_interval = flush_interval
        self._store = sync_to_async(store)
        self._queue: asyncio.Queue[dict[str, Any] | _Marker] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._error: BaseException | None = None
        self._started_streams: set[tuple[str, str]] = set()
        self._last_flush = 0.0
        self._run_updates: dict[str, Any] = {}
        self.published = 0

    # --- producer side (sync, never blocks) ------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._run())

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
        while True:
            batch: list[Any] = [await self._queue.get()]
            self._drain(batch)
            while self._wait_for_more(batch):
                remaining = self._last_flush + self.flush_interval - loop.time()
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
                if not marker.future.done():
                    marker.future.set_result(None)
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
        await self._store(self.run_id, rows, updates)
        for seq, payload in rows:
            await self._publish(seq, payload)

    async def _publish(self, seq: int, payload: dict[str, Any]) -> None:
        message = events.run_event(self.run_id, seq, payload)
        for group in self.groups:
            try:
                await events.apublish(group, message)
            except Exception:  # noqa: BLE001 - stored already; clients resume from storage
                logger.warning("run %s: publishing event %d to %s failed", self.run_id, seq, group)
        self.published += 1
