"""Following a run's events: the stored backlog, then the live stream, in order, once each.

The runtime stores every event (``RunEvent``, contiguous ``seq`` from 1 per run) before it
publishes it (``chats.events``), so anyone who follows a run — an SSE response, an
OpenAI-compatible stream, an MCP tool call, a WebSocket that resumes — can be sure of
every event by combining the two sources:

1. subscribe to the live source first (so nothing published from now on is missed),
2. read what is stored after the last ``seq`` the follower has,
3. forward live events, dropping those at or below the last ``seq`` (already read from
   storage) and filling a gap from storage (a publish that failed: the emitter logs it
   and carries on, because the event is stored),
4. stop after the terminal event (``RUN_FINISHED`` or ``RUN_ERROR``).

:class:`RunCursor` is that bookkeeping for one run, usable by any consumer that gets live
events its own way (the chat WebSocket consumer receives them through its chat group).
:func:`follow_run` adds a private channel on the run's group and a deadline; it is what
the HTTP interfaces stream from. :func:`run_result` waits for the end of a run and
returns its answer (non-streaming OpenAI responses, MCP tool calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError

from chats import chat_selectors, events
from chats.models import Run

logger = logging.getLogger(__name__)

TERMINAL_TYPES = frozenset({"RUN_FINISHED", "RUN_ERROR"})
TEXT_DELTA = "TEXT_MESSAGE_CONTENT"
# Rows read from storage per query when catching up.
BACKLOG_PAGE = 1000
# Without a live event for this long, look in storage (a publish may have been lost).
IDLE_POLL_SECONDS = 2.0
FIRST_POLL_SECONDS = 0.5
# Tries of a storage read before the follower gives up (~5 s with the back-off).
READ_ATTEMPTS = 8

Event = dict[str, Any]
# Yielded by ``follow_run(..., idle=True)`` when nothing happened for ``idle_poll`` seconds
# (an SSE response turns it into a keep-alive comment).
IDLE: Event = {"type": "_IDLE"}

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def db_executor() -> ThreadPoolExecutor:
    """Database threads for the HTTP streaming interfaces (``STREAM_DB_THREADS``, 8).

    A stream lives for the whole run; running its few queries on a small pool of our own
    (not on a thread per request) keeps the number of database connections bounded
    however many streams are open, and one slow query does not hold up the others.
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=int(getattr(settings, "STREAM_DB_THREADS", 8)),
                thread_name_prefix="stream-db",
            )
        return _executor


def close_db_connections(timeout: float = 5.0) -> None:
    """Close the database connections held by the pool's threads (tests, before the test
    database is dropped). Every thread takes one task: they wait for each other."""
    executor = db_executor()
    workers = executor._max_workers  # noqa: SLF001 - the size we created it with
    barrier = threading.Barrier(workers, timeout=timeout)

    def close() -> None:
        from django.db import connections

        connections.close_all()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    for future in [executor.submit(close) for _ in range(workers)]:
        future.result(timeout=timeout + 1)


async def db(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` (sync, database work) on :func:`db_executor`; stale connections are
    closed before and after, as Channels does for consumers."""
    return await database_sync_to_async(fn, thread_sensitive=False, executor=db_executor())(
        *args, **kwargs
    )


class FollowTimeout(Exception):
    """The run did not reach its terminal event before the follower's deadline."""


def is_terminal(event: Event) -> bool:
    return event.get("type") in TERMINAL_TYPES


def follow_timeout() -> float:
    """How long a follower waits for a run to end: the hard limit of a run plus a margin
    for queueing (a run that outlives it is failed by the sweeper anyway)."""
    return float(getattr(settings, "RUN_HARD_TIME_LIMIT", 660)) + 60.0


class RunCursor:
    """The position of one follower in one run's events (the last ``seq`` delivered).

    ``await cursor.backlog()`` returns the stored events it has not delivered yet;
    ``await cursor.accept(live_event)`` returns what to deliver for a live event: nothing
    for a duplicate, the missing stored events first for a gap. Both advance the cursor and
    deliver nothing after the terminal event (``cursor.finished``).

    The caller must have checked that the user may see the run.
    """

    def __init__(self, run_id: Any, *, after: int = 0) -> None:
        self.run_id = str(run_id)
        self.last_seq = max(0, int(after))
        self.finished = False

    def _take(self, batch: list[Event]) -> list[Event]:
        delivered: list[Event] = []
        for event in batch:
            if self.finished:
                break
            seq = event.get("seq")
            if not isinstance(seq, int) or seq <= self.last_seq:
                continue
            self.last_seq = seq
            delivered.append(event)
            self.finished = is_terminal(event)
        return delivered

    async def _read(self, upto: int | None) -> list[Event]:
        delay = 0.05
        for attempt in range(READ_ATTEMPTS):
            try:
                return await db(
                    chat_selectors.stored_events,
                    self.run_id,
                    after=self.last_seq,
                    before=None if upto is None else upto + 1,
                    limit=BACKLOG_PAGE,
                )
            except DatabaseError as exc:
                # A lock held by the run's own write (SQLite) or a dropped connection:
                # the events are not going anywhere, read again shortly.
                if attempt == READ_ATTEMPTS - 1:
                    raise
                logger.info("run %s: reading events failed (%s); retrying", self.run_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        return []

    async def backlog(self, *, upto: int | None = None) -> list[Event]:
        """Stored events after the cursor (up to ``upto`` inclusive), in order."""
        delivered: list[Event] = []
        while not self.finished:
            page = await self._read(upto)
            delivered.extend(self._take(page))
            if len(page) < BACKLOG_PAGE:
                break
        return delivered

    async def accept(self, event: Event) -> list[Event]:
        """What to deliver for ``event`` received live (in any order, possibly twice)."""
        seq = event.get("seq")
        if self.finished or not isinstance(seq, int) or seq <= self.last_seq:
            return []
        delivered: list[Event] = []
        if seq > self.last_seq + 1:
            delivered.extend(await self.backlog(upto=seq - 1))
        delivered.extend(self._take([event]))
        return delivered


class Subscription:
    """A private channel in a run's group: the run's live events.

    Opened before the run exists (:func:`start_subscribed`), it hears the run from its
    first event: a follower subscribing only after the dispatch would find the first
    events already published, and read them from storage before it could pass on the
    first token (a database round trip on the way to the first token, under load the
    slowest part of the relay). Closing is idempotent; :meth:`close_soon` does it from any
    thread (a response closed before its stream started)."""

    def __init__(self, run_id: Any) -> None:
        self.run_id = str(run_id)
        self.layer = get_channel_layer()
        self.group = events.run_group(self.run_id)
        self.channel = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    async def open(self) -> Subscription:
        self.loop = asyncio.get_running_loop()
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        return self

    async def close(self) -> None:
        if self.closed or not self.channel:
            return
        self.closed = True
        try:
            await self.layer.group_discard(self.group, self.channel)
        except Exception:  # noqa: BLE001 - the layer is gone; membership expires on its own
            logger.warning("leaving %s failed", self.group)

    def close_soon(self) -> None:
        loop = self.loop
        if self.closed or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.close()))


async def start_subscribed(start: Callable[..., Any], *args: Any) -> tuple[Any, Subscription]:
    """Subscribe to a new run's events, then ``start(*args, run_id=...)`` (sync, on the
    database threads: it stores and dispatches the run with that id). The subscription is
    open before the run can publish anything (one Redis round trip, against the database
    round trips of a read-back), so a fresh stream gets every event live."""
    run_id = str(uuid.uuid4())
    subscription = await Subscription(run_id).open()
    try:
        started = await db(start, *args, run_id=run_id)
    except BaseException:
        await subscription.close()
        raise
    return started, subscription


class SubscribedStream:
    """The body of a streaming response that follows a run through ``subscription``:
    Django calls :meth:`close` when the response ends, which also drops the subscription
    of a stream that never started (the client left first)."""

    def __init__(self, body: AsyncIterator[Any], subscription: Subscription) -> None:
        self.body = body
        self.subscription = subscription

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.body

    def close(self) -> None:
        self.subscription.close_soon()


async def follow_run(
    run_id: Any,
    *,
    after: int = 0,
    max_wait: float | None = None,
    idle_poll: float = IDLE_POLL_SECONDS,
    idle: bool = False,
    fresh: bool = False,
    subscription: Subscription | None = None,
) -> AsyncIterator[Event]:
    """Yield run ``run_id``'s events with ``seq > after`` in order, ending with the
    terminal event; raises :class:`FollowTimeout` after ``max_wait`` seconds (default
    :func:`follow_timeout`). With ``idle=True`` it also yields :data:`IDLE` after each
    quiet ``idle_poll`` seconds.

    ``fresh=True`` (the caller has just created the run) skips the first look at storage:
    live events start at ``seq`` 1 unless the run got ahead of the subscription, and then
    the first live event shows the gap, which is read from storage. So an ordinary stream
    costs no query at all in the web process.

    ``subscription``: one opened before the run started (:func:`start_subscribed`); it is
    closed with the stream.

    Runs on the event loop that serves the request (the in-memory channel layer only
    works there). Closing the iterator (the client went away) leaves the group.
    """
    if subscription is None:
        subscription = await Subscription(run_id).open()
    layer, channel = subscription.layer, subscription.channel
    cursor = RunCursor(run_id, after=after)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (follow_timeout() if max_wait is None else max_wait)
    receiving: asyncio.Future | None = None
    try:
        if not fresh:
            for event in await cursor.backlog():
                yield event
        while not cursor.finished:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise FollowTimeout(str(run_id))
            if receiving is None:
                # One receive at a time, kept across idle polls: cancelling a receive of
                # channels-redis mid-way is what loses messages.
                receiving = asyncio.ensure_future(layer.receive(channel))
            # Until something arrives, look at storage sooner: a fresh run may have got
            # ahead of the subscription and then gone quiet (waiting for its model).
            wait = idle_poll if cursor.last_seq else min(idle_poll, FIRST_POLL_SECONDS)
            done, _pending = await asyncio.wait({receiving}, timeout=min(wait, remaining))
            if not done:
                caught_up = await cursor.backlog()
                for event in caught_up:
                    yield event
                if idle and not caught_up:
                    yield IDLE
                continue
            failed, receiving = receiving.exception(), None
            if failed is not None:
                # The live source broke (Redis went away...): storage still has every
                # event, so poll it until the layer answers again.
                logger.warning("run %s: receiving live events failed: %r", run_id, failed)
                await asyncio.sleep(min(idle_poll, max(0.0, deadline - loop.time())))
                for event in await cursor.backlog():
                    yield event
                continue
            message = done.pop().result()
            if message.get("type") != events.HANDLER_TYPE:
                continue
            for event in await cursor.accept(message.get("event") or {}):
                yield event
    finally:
        if receiving is not None:
            receiving.cancel()
            with contextlib.suppress(BaseException):
                await receiving
        await subscription.close()


@dataclass
class RunResult:
    """How a run ended, as the non-streaming interfaces report it."""

    run_id: str
    status: str
    text: str
    usage: dict[str, Any] = field(default_factory=dict)
    error_code: str = ""
    error_message: str = ""
    terminal: Event = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == Run.Status.COMPLETED


def _finished_run(run_id: str) -> tuple[str, str, dict, str, str] | None:
    return (
        Run.objects.filter(pk=run_id)
        .values_list("status", "output", "usage", "error_code", "error_message")
        .first()
    )


async def run_result(
    run_id: Any,
    *,
    max_wait: float | None = None,
    fresh: bool = False,
    on_event: Callable[[Event], Awaitable[None]] | None = None,
    subscription: Subscription | None = None,
) -> RunResult:
    """Wait for run ``run_id`` to end and return its answer (the stored output, else the
    streamed text) and usage; raises :class:`FollowTimeout`. ``on_event`` sees every
    event on the way (progress reports)."""
    pieces: list[str] = []
    terminal: Event = {}
    async for event in follow_run(
        run_id, max_wait=max_wait, fresh=fresh, subscription=subscription
    ):
        if on_event is not None:
            await on_event(event)
        if event.get("type") == TEXT_DELTA:
            pieces.append(str(event.get("delta") or ""))
        elif is_terminal(event):
            terminal = event
    row = await db(_finished_run, str(run_id))
    status, output, usage, code, message = row or ("failed", "", {}, "", "")
    if terminal.get("type") == "RUN_ERROR":
        code = code or str(terminal.get("code") or "")
        message = message or str(terminal.get("message") or "")
    return RunResult(
        run_id=str(run_id),
        status=status,
        text=output or "".join(pieces),
        usage=usage or {},
        error_code=code,
        error_message=message,
        terminal=terminal,
    )
