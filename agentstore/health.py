"""Liveness (``/healthz``) and readiness (``/readyz``) endpoints (SPEC §11).

``/readyz`` answers 200 only when every check passes, else 503; each check reports
``ok``, its time in ms and either details or a short error (credentials in URLs are
masked). Apps add their own checks (e.g. the vector store) with :func:`register_check`
from their ``AppConfig.ready()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from agentstore.observability import redact

logger = logging.getLogger(__name__)
STARTED_AT = time.time()
CHECK_TIMEOUT_S = 2.0
_extra_checks: dict[str, Callable[[], dict[str, Any] | None]] = {}


def register_check(name: str, check: Callable[[], dict[str, Any] | None]) -> None:
    """Add a readiness check: a callable that raises on failure, or returns details."""
    _extra_checks[name] = check


def _safe_error(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}")[:300]


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "uptime_s": round(time.time() - STARTED_AT, 1)})


def _timed(check) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure, never raises
        return {
            "ok": False,
            "error": _safe_error(exc),
            "ms": round((time.perf_counter() - start) * 1000, 1),
        }
    return {"ok": True, "ms": round((time.perf_counter() - start) * 1000, 1), **(detail or {})}


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


async def _drop_channel(layer: Any, channel: str) -> None:
    # Channels has no delete_channel(): a layer forgets a channel when a receive() on it is
    # cancelled, as a consumer's channel goes when its socket closes. A zero timeout lets
    # the receive start waiting, then cancels it. Without this, the pub/sub layer would keep
    # one Redis subscription per probe on the server loop.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0):
            await layer.receive(channel)


async def _channel_layer_roundtrip(layer: Any) -> None:
    # Listen before sending: the pub/sub layer only delivers to channels already subscribed.
    channel = await layer.new_channel()
    try:
        await layer.send(channel, {"type": "readyz.ping"})
    except Exception:
        await _drop_channel(layer, channel)
        raise
    # A receive that times out is cancelled, which drops the channel by itself.
    await asyncio.wait_for(layer.receive(channel), timeout=CHECK_TIMEOUT_S)
    await _drop_channel(layer, channel)


def _check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    # Under an ASGI server this runs on the server loop (the view's thread came from it),
    # with the connections the sockets use; elsewhere on a throwaway loop, whose channel
    # layer connections channels-redis closes with the loop.
    async_to_sync(_channel_layer_roundtrip)(layer)
    return {"backend": type(layer).__name__}


def _check_broker() -> dict[str, Any]:
    from agentstore.celery import app

    # The URL from settings (not the app's cached conf) so the check follows overrides.
    url = settings.CELERY_BROKER_URL
    with app.connection_for_write(url=url) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_S)
    return {"transport": url.split(":", 1)[0]}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {
        "database": _timed(_check_database),
        "channel_layer": _timed(_check_channel_layer),
    }
    if settings.TASK_DISPATCH == "celery":
        checks["broker"] = _timed(_check_broker)
    for name, check in _extra_checks.items():
        checks[name] = _timed(check)
    failed = sorted(name for name, check in checks.items() if not check["ok"])
    for name in failed:
        logger.warning(
            "readiness check %s failed: %s", name, checks[name]["error"], extra={"check": name}
        )
    ready = not failed
    return JsonResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )
