"""Run control shared by the web process and the workers: the stop flag and timing knobs.

``run_stop`` (a service) sets a flag in Django's cache — Redis in production, so every
worker sees it; the process's local memory in embedded mode, where runs execute in the
web process itself. Executing runs are watched every ``RUN_STOP_POLL_SECONDS`` (0.1 s) by
one :class:`StopWatcher` per event loop — one ``get_many`` for all the runs on it, not a
round trip per run — and a stopped run cancels within a second in both run modes.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

STOP_FLAG_TTL = 3600


def stop_key(run_id: Any) -> str:
    return f"run:stop:{run_id}"


def request_stop(run_id: Any) -> None:
    cache.set(stop_key(run_id), 1, STOP_FLAG_TTL)


def stop_requested(run_id: Any) -> bool:
    return cache.get(stop_key(run_id)) is not None


def clear_stop(run_id: Any) -> None:
    cache.delete(stop_key(run_id))


def setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def max_attempts() -> int:
    """Executions a run may have: the first one plus ``RUN_MAX_RETRIES`` (2) retries."""
    return 1 + int(getattr(settings, "RUN_MAX_RETRIES", 2))


def heartbeat_interval() -> float:
    return setting("RUN_HEARTBEAT_INTERVAL", 5.0)


def stale_after() -> float:
    """A running run whose heartbeat is older than this has lost its worker."""
    return setting("RUN_STALE_AFTER", 30.0)


class StopWatcher:
    """Polls the stop flags of every run executing on one event loop (see the module
    docstring). ``watch(run_id)`` returns an event set when the run should stop."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StopWatcher] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task | None = None

    @classmethod
    def current(cls) -> StopWatcher:
        loop = asyncio.get_running_loop()
        watcher = cls._by_loop.get(loop)
        if watcher is None:
            watcher = cls._by_loop[loop] = cls()
        return watcher

    def watch(self, run_id: Any) -> asyncio.Event:
        event = self.events.setdefault(str(run_id), asyncio.Event())
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())
        return event

    def unwatch(self, run_id: Any) -> None:
        self.events.pop(str(run_id), None)

    async def _poll(self) -> None:
        interval = setting("RUN_STOP_POLL_SECONDS", 0.1)
        while self.events:
            await asyncio.sleep(interval)
            keys = {stop_key(run_id): run_id for run_id in self.events}
            try:
                found = cache.get_many(list(keys))
            except Exception:  # noqa: BLE001 - the cache is down: try again next tick
                logger.warning("reading run stop flags failed")
                continue
            for key in found:
                event = self.events.get(keys[key])
                if event is not None:
                    event.set()
