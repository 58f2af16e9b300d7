"""Liveness (``/healthz``) and readiness (``/readyz``) endpoints (SPEC §11)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

STARTED_AT = time.time()


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
            "error": f"{type(exc).__name__}: {exc}"[:300],
            "ms": round((time.perf_counter() - start) * 1000, 1),
        }
    return {"ok": True, "ms": round((time.perf_counter() - start) * 1000, 1), **(detail or {})}


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    channel = f"readyz.{uuid.uuid4().hex}"

    async def roundtrip() -> None:
        await layer.send(channel, {"type": "readyz.ping"})
        await layer.receive(channel)

    async_to_sync(roundtrip)()
    return {"backend": type(layer).__name__}


def _check_broker() -> dict[str, Any]:
    from agentstore.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {"transport": app.conf.broker_url.split(":", 1)[0]}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {
        "database": _timed(_check_database),
        "channel_layer": _timed(_check_channel_layer),
    }
    if settings.TASK_DISPATCH == "celery":
        checks["broker"] = _timed(_check_broker)
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )
