"""Hands background work to Celery (production) or to the web process (embedded mode).

Production (``TASK_DISPATCH=celery``): ``task.apply_async``. Embedded: there is no broker,
so the same task function runs on a worker thread scheduled from the ASGI server's event
loop (never inline inside a consumer, which would block every socket). Outside a server
(shell, management commands, tests) nothing has bound a loop and the task runs inline.

Callers dispatch from ``transaction.on_commit`` so work never starts before its rows exist.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

TASK_THREAD_PREFIX = "agentstore-task"

_server_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()
_pending: set[Future] = set()
_loop_tasks: set[asyncio.Task] = set()
_executor: ThreadPoolExecutor | None = None
_execution_mode: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentstore_execution_mode", default=None
)


def bind_server_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Called by the ASGI entry point so embedded work can be scheduled on its loop."""
    global _server_loop
    with _lock:
        _server_loop = loop


def unbind_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Forget ``loop`` at server shutdown, unless another server has bound its own since."""
    global _server_loop
    with _lock:
        if _server_loop is loop:
            _server_loop = None


def server_loop() -> asyncio.AbstractEventLoop | None:
    loop = _server_loop
    if loop is not None and (loop.is_closed() or not loop.is_running()):
        return None
    return loop


def mode() -> str:
    return "celery" if settings.TASK_DISPATCH == "celery" else "embedded"


def execution_mode() -> str:
    """How the task body calling this runs: ``celery``, ``embedded`` (web process) or ``inline``."""
    current = _execution_mode.get()
    if current is not None:
        return current
    from celery import current_task

    if current_task and not current_task.request.called_directly:
        return "celery"
    return "inline"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _task_executor() -> ThreadPoolExecutor:
    # A pool of our own, not the loop's default executor: runs last minutes, and the default
    # pool (min(32, cores + 4) threads) also serves DNS lookups and other short sync calls.
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.EMBEDDED_TASK_THREADS,
                thread_name_prefix=TASK_THREAD_PREFIX,
            )
        return _executor


def _run_in_thread(task: Any, args: tuple, kwargs: dict) -> Any:
    _execution_mode.set("embedded")  # sync_to_async runs us in a copied context
    try:
        return task.run(*args, **kwargs)
    except Exception:
        logger.exception("embedded task %s failed", getattr(task, "name", task))
        raise
    finally:
        # Tasks are long and rare next to requests: an idle pool thread should not hold
        # a database connection (16 threads x CONN_MAX_AGE), so each task opens its own.
        connections.close_all()


def _forget(future: Future) -> None:
    with _lock:
        _pending.discard(future)


def dispatch(task: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``task`` (a Celery task) in the background with JSON-serialisable arguments.

    Returns Celery's ``AsyncResult``, a ``concurrent.futures.Future`` (embedded, on a
    worker thread of the web process) or the task's return value (inline).
    """
    if mode() == "celery":
        return task.apply_async(args=args, kwargs=kwargs)
    # Called from async code without a bound server (e.g. a consumer under test): the
    # running loop is the server; running inline would block it and break the ORM.
    loop = server_loop() or _running_loop()
    if loop is None:
        token = _execution_mode.set("inline")
        try:
            return task.run(*args, **kwargs)
        finally:
            _execution_mode.reset(token)
    runner = sync_to_async(_run_in_thread, thread_sensitive=False, executor=_task_executor())
    future = asyncio.run_coroutine_threadsafe(runner(task, args, kwargs), loop)
    with _lock:
        _pending.add(future)
    future.add_done_callback(_forget)
    return future


def run_on_server_loop(
    coro_factory: Callable[[], Awaitable[Any]],
) -> Future | asyncio.Task | None:
    """Start a coroutine on the server loop from any thread; None when no loop is bound.

    The in-memory channel layer's queues belong to the server loop, so events published
    from embedded worker threads must be sent from there. From another thread the result
    is a ``concurrent.futures.Future`` the caller may wait on; on the loop itself, a task.
    """
    loop = server_loop()
    if loop is None:
        return None
    if _running_loop() is loop:
        task = loop.create_task(coro_factory())
        # The loop keeps only weak references to tasks: hold one until it is done.
        _loop_tasks.add(task)
        task.add_done_callback(_loop_tasks.discard)
        return task
    return asyncio.run_coroutine_threadsafe(coro_factory(), loop)


async def drain(grace: float) -> None:
    """At server shutdown: give embedded tasks up to ``grace`` s to finish on a live loop."""
    with _lock:
        pending = list(_pending)
    if pending:
        logger.info("waiting up to %.0f s for %d background task(s)", grace, len(pending))
        await asyncio.wait([asyncio.wrap_future(f) for f in pending], timeout=grace)


def wait_for_pending(timeout: float = 10.0) -> None:
    """Test helper: block until embedded background work scheduled so far has finished."""
    with _lock:
        pending = list(_pending)
    for future in pending:
        future.result(timeout=timeout)
