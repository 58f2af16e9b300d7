"""Hands background work to Celery (production) or to the web process (embedded mode).

Production (``TASK_DISPATCH=celery``): ``task.apply_async``. Embedded: there is no broker,
so the same task function runs on a worker thread scheduled from the ASGI server's event
loop (never inline inside a consumer, which would block every socket). Outside a server
(shell, management commands, tests) nothing has bound a loop and the task runs inline.

Callers dispatch from ``transaction.on_commit`` so work never starts before its rows exist.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()
_pending: set[Future] = set()


def bind_server_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Called by the ASGI entry point so embedded work can be scheduled on its loop."""
    global _server_loop
    with _lock:
        _server_loop = loop


def server_loop() -> asyncio.AbstractEventLoop | None:
    loop = _server_loop
    if loop is not None and (loop.is_closed() or not loop.is_running()):
        return None
    return loop


def mode() -> str:
    return "celery" if settings.TASK_DISPATCH == "celery" else "embedded"


def _run_in_thread(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    close_old_connections()
    try:
        return func(*args, **kwargs)
    except Exception:
        logger.exception("embedded task %s failed", getattr(func, "name", func))
        raise
    finally:
        close_old_connections()


def dispatch(task: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``task`` (a Celery task) in the background with JSON-serialisable arguments."""
    if mode() == "celery":
        return task.apply_async(args=args, kwargs=kwargs)
    loop = server_loop()
    if loop is None:
        return task.run(*args, **kwargs)
    runner = sync_to_async(_run_in_thread, thread_sensitive=False)
    future = asyncio.run_coroutine_threadsafe(runner(task.run, args, kwargs), loop)
    _pending.add(future)
    future.add_done_callback(_pending.discard)
    return future


def run_on_server_loop(coro_factory: Callable[[], Awaitable[Any]]) -> bool:
    """Run a coroutine on the server loop from another thread (fire and forget).

    Returns False when no server loop is bound, so the caller can do the work itself.
    The in-memory channel layer's queues belong to the server loop, so events published
    from embedded worker threads must be sent from there.
    """
    loop = server_loop()
    if loop is None:
        return False
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(coro_factory())
    else:
        asyncio.run_coroutine_threadsafe(coro_factory(), loop)
    return True


def wait_for_pending(timeout: float = 10.0) -> None:
    """Test helper: block until embedded background work scheduled so far has finished."""
    for future in list(_pending):
        future.result(timeout=timeout)
