"""Run control shared by the web process and the workers: the stop flag and timing knobs.

``run_stop`` (a service) sets a flag in Django's cache — Redis in production, so every
worker sees it; the process's local memory in embedded mode, where runs execute in the
web process itself. The executing run polls it every ``RUN_STOP_POLL_SECONDS`` (0.1 s) and
cancels within a second in both run modes.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache

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
