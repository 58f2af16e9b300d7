"""The audit-log service: every state-changing service calls :func:`audit_record`.

``detail`` must never hold secrets; keys whose names look secret are masked as a
second line of defence.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import models

from accounts.models import AuditLog, User
from agentstore.observability import current_request_id

_SECRET_NAME = re.compile(r"(pass|secret|token|api_?key|authorization|credential)", re.I)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_NAME.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def client_ip(request: Any) -> str | None:
    if request is None:
        return None
    meta = getattr(request, "META", None) or {}
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        # Each trusted proxy appends the address it saw; the client is `hops` from the end.
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return meta.get("REMOTE_ADDR") or None


def audit_record(
    actor: User | None,
    *,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    request: Any = None,
    ip: str | None = None,
    via: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    auth = getattr(request, "auth", None) if request is not None else None
    api_key_prefix = getattr(auth, "prefix", "") if auth is not None else ""
    if not via and request is not None:
        via = getattr(request, "auth_via", "") or ("api_key" if api_key_prefix else "web")
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditLog.objects.create(
        actor=actor if is_user else None,
        actor_label=(actor.username if is_user else "system")[:200],
        via=via or "system",
        api_key_prefix=api_key_prefix or "",
        action=action,
        object_type=object_type,
        object_id=object_id,
        ip=ip or client_ip(request),
        request_id=current_request_id() if current_request_id() != "-" else "",
        detail=_scrub(detail or {}),
    )
