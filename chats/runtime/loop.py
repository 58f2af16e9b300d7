"""Which event loop a run executes on.

- **Embedded** (web process): the ASGI server's loop (``async_to_sync`` from a dispatcher
  thread schedules there by itself), as STYLE §3 describes.
- **Celery**: one long-lived loop per worker process, on a background thread, shared by
  every run of the process — like the server loop of embedded mode. A loop per run
  (``asyncio.run``) would open and close a channels-redis connection pool per run (~10 ms
  on the way to the first token, measured by ``bench/run_overhead.py``) and start a
  thread each time. The Celery task thread stays the run's "sync thread": thread-sensitive
  ``sync_to_async`` calls (the database) come back to it, so each run keeps its own
  connection and runs do not queue behind one another's queries.
- **Inline** (tests, shell): a private loop per run (plain ``async_to_sync``).

The shared loop is created lazily in the process that uses it, so a prefork pool's
children each get their own after the fork.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import SyncToAsync

_lock = threading.Lock()
_state: tuple[int, asyncio.AbstractEventLoop] | None = None


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (``WORKER_EVENT_LOOP``, default ``uvloop``): every
    streamed token is a socket read, a few callbacks and a wake-up of the loop, and
    uvloop's C transports and scheduler do that at a fraction of asyncio's cost."""
    from django.conf import settings

    if getattr(settings, "WORKER_EVENT_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is in requirements.txt
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def apply_switch_interval() -> None:
    """Set CPython's GIL switch interval (``WORKER_SWITCH_INTERVAL``) for this process.

    A run hands work between its thread and the worker's event loop several times on the
    way to its first token; with the default 5 ms a woken thread can wait that long for
    the GIL while another thread computes. Called by Celery workers at start (not by the
    web process: see the setting)."""
    import sys

    from django.conf import settings

    interval = float(getattr(settings, "WORKER_SWITCH_INTERVAL", 0) or 0)
    if interval > 0:
        sys.setswitchinterval(interval)


def worker_loop() -> asyncio.AbstractEventLoop:
    """This process's shared background loop (started on first use)."""
    global _state
    with _lock:
        if _state is None or _state[0] != os.getpid() or _state[1].is_closed():
            loop = _new_loop()
            threading.Thread(target=loop.run_forever, name="run-loop", daemon=True).start()
            _state = (os.getpid(), loop)
        return _state[1]


@contextmanager
def runs_on(loop: asyncio.AbstractEventLoop | None) -> Iterator[None]:
    """Make ``async_to_sync`` called from this (sync) thread run its coroutine on ``loop``
    and serve its thread-sensitive sync calls here — asgiref's own mechanism for code
    called from inside ``sync_to_async``, which marks its threads the same way."""
    if loop is None:
        yield
        return
    local = SyncToAsync.threadlocal
    previous = (
        getattr(local, "main_event_loop", None),
        getattr(local, "main_event_loop_pid", None),
    )
    local.main_event_loop, local.main_event_loop_pid = loop, os.getpid()
    try:
        yield
    finally:
        local.main_event_loop, local.main_event_loop_pid = previous


def owns_channel_connections(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a loop is private to one run (its channel-layer pool must be closed at the
    end) rather than shared (the server loop, the worker loop)."""
    from agentstore import dispatch

    shared = _state[1] if _state is not None and _state[0] == os.getpid() else None
    return loop is not dispatch.server_loop() and loop is not shared


# --- database calls of a run ------------------------------------------------------------------


def pooled_connections() -> bool:
    """Whether the database connections come from a pool (``DB_POOL_SIZE``)."""
    from django.db import connection

    return bool((connection.settings_dict.get("OPTIONS") or {}).get("pool"))


def release_run_connection() -> None:
    """In a Celery worker with a connection pool, hand this thread's connection back to the
    pool between a run's database calls. A run then holds a connection only while it
    talks to the database, not for the seconds it streams, so a worker process can run
    many more runs at once than it has connections (``WORKER_CONCURRENCY`` threads over
    ``DB_POOL_SIZE`` connections). Without a pool (or outside Celery: the server loop,
    tests inside a transaction) the thread keeps its connection as before."""
    from django.db import connection

    from agentstore.dispatch import execution_mode

    if pooled_connections() and execution_mode() == "celery" and not connection.in_atomic_block:
        connection.close()


def db_call[T](func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``sync_to_async(func)`` on the run's database thread, releasing the connection
    afterwards where :func:`release_run_connection` says so."""
    from asgiref.sync import sync_to_async

    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        finally:
            release_run_connection()

    return sync_to_async(call)
