"""System settings (SPEC §4.4): the cached read and the audited writes.

``setting_get`` is called on hot paths (e.g. the session limit on every new chat), so
values are cached for 30 s in Django's cache; ``setting_set`` and ``setting_delete``
invalidate the entry when their transaction commits. Secret settings are cached as
ciphertext and decrypted on each read, so the cache never holds a plaintext secret.
"""

from __future__ import annotations

import json
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


def setting_get(key: str, default: Any = None) -> Any:
    """The setting's value (a secret setting's decrypted text), or ``default``."""
    entry = cache.get(_cache_key(key))
    if entry is None:
        entry = _load(key)
        cache.set(_cache_key(key), entry, CACHE_TTL_SECONDS)
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
    cache.delete(_cache_key(key))
    # Again after commit: a reader between the delete and the commit re-caches the old row.
    transaction.on_commit(lambda: cache.delete(_cache_key(key)))


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
