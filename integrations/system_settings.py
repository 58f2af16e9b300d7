"""System settings (SPEC §4.4): the cached read and the audited writes.

``setting_get`` is called on hot paths (e.g. the session limit on every new chat, the
outbound allowlist of every model call), so values are cached for 30 s in Django's cache;
``setting_set`` and ``setting_delete`` invalidate the entry when their transaction
commits. On top of that each process remembers an entry for ``SYSTEM_SETTINGS_MEMO``
seconds (1 s; 0 turns it off) — a cache read is a Redis round trip, ~0.7 ms of CPU on the
way to every run's first token. Another process's change is therefore seen within a
second; a change in this process (and any save or delete of a ``SystemSetting`` row here)
clears the memo at once. Secret settings are cached and remembered as ciphertext and
decrypted on each read, so neither ever holds a plaintext secret.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.db.models.functions import Cast
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import User
from agentstore.errors import NotFound, PermissionDenied, ValidationFailed
from integrations import secrets
from integrations.models import SystemSetting

CACHE_TTL_SECONDS = 30
_KEY_FIELD = SystemSetting._meta.get_field("key")


def _cache_key(key: str) -> str:
    return f"system-setting:v1:{key}"


def _load(key: str) -> dict[str, Any]:
    # The raw column (Cast bypasses the field's decryption), so a secret stays ciphertext.
    row = (
        SystemSetting.objects.filter(key=key)
        .annotate(token=Cast("secret_value", models.TextField()))
        .values("value", "is_secret", "token")
        .first()
    )
    if row is None:
        return {"found": False}
    if not row["is_secret"]:
        return {"found": True, "value": row["value"]}
    token = row["token"] or ""
    if token and not secrets.is_encrypted(token):
        token = secrets.encrypt(token)  # legacy plaintext row: never cache it as such
    return {"found": True, "token": token}


# key → (monotonic time it was read, cache entry): this process's memo (module docstring).
_memo: dict[str, tuple[float, dict[str, Any]]] = {}


def forget_memo(key: str | None = None) -> None:
    """Drop this process's remembered entry for ``key`` (every entry when None)."""
    if key is None:
        _memo.clear()
    else:
        _memo.pop(key, None)


def _memo_seconds() -> float:
    from django.conf import settings

    return float(getattr(settings, "SYSTEM_SETTINGS_MEMO", 1.0))


def setting_get(key: str, default: Any = None) -> Any:
    """The setting's value (a secret setting's decrypted text), or ``default``."""
    now = time.monotonic()
    remembered = _memo.get(key)
    if remembered is not None and now - remembered[0] < _memo_seconds():
        entry = remembered[1]
    else:
        entry = cache.get(_cache_key(key))
        if entry is None:
            entry = _load(key)
            cache.set(_cache_key(key), entry, CACHE_TTL_SECONDS)
        _memo[key] = (now, entry)
    if not entry["found"]:
        return default
    if "token" in entry:
        return secrets.decrypt(entry["token"]) if entry["token"] else default
    return default if entry["value"] is None else entry["value"]


def _check_actor(actor: User | None) -> None:
    # actor None is the system itself (migrations, management commands).
    if actor is not None and not actor.has_perm("integrations.change_systemsetting"):
        raise PermissionDenied()


def _invalidate(key: str) -> None:
    def drop() -> None:
        cache.delete(_cache_key(key))
        forget_memo(key)

    drop()
    # Again after commit: a reader between the delete and the commit re-caches the old row.
    transaction.on_commit(drop)


def setting_set(
    actor: User | None,
    *,
    key: str,
    value: Any,
    request: Any = None,
    description: str | None = None,
    is_secret: bool | None = None,
) -> SystemSetting:
    """Create or update a setting. ``description``/``is_secret`` of None keep what is stored.

    For a secret setting ``value`` must be a string (``""`` or None clears it); the audit
    log records that it changed, never the value.
    """
    _check_actor(actor)
    try:
        _KEY_FIELD.clean(key, None)
    except DjangoValidationError:
        raise ValidationFailed(
            details={"key": [_("Enter a valid key (letters, digits, - or _).")]}
        ) from None
    with transaction.atomic():
        setting, created = SystemSetting.objects.select_for_update().get_or_create(key=key)
        if is_secret is not None:
            setting.is_secret = is_secret
        if description is not None:
            setting.description = description
        if setting.is_secret:
            if value is not None and not isinstance(value, str):
                raise ValidationFailed(details={"value": [_("A secret value must be text.")]})
            setting.secret_value = value or ""
            setting.value = None
            # Names chosen so audit scrubbing keeps them: they say what happened, not the value.
            change: dict[str, Any] = {"encrypted": True, "change": "set" if value else "cleared"}
        else:
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise ValidationFailed(details={"value": [_("The value must be JSON.")]}) from None
            setting.value = value
            setting.secret_value = ""
            change = {"encrypted": False, "value": value}
        setting.updated_by = actor if actor is not None and actor.is_authenticated else None
        setting.save()
        audit_record(
            actor,
            action="system_setting.set",
            obj=setting,
            request=request,
            detail={"key": key, "created": created, **change},
        )
        _invalidate(key)
    return setting


def setting_delete(actor: User | None, *, key: str, request: Any = None) -> None:
    _check_actor(actor)
    with transaction.atomic():
        setting = SystemSetting.objects.select_for_update().filter(key=key).first()
        if setting is None:
            raise NotFound()
        audit_record(
            actor, action="system_setting.delete", obj=setting, request=request, detail={"key": key}
        )
        setting.delete()
        _invalidate(key)
