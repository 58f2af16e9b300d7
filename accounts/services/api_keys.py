"""Personal API keys: create (the plaintext is returned once), revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import tokens
from accounts.audit import audit_record
from accounts.models import ApiKey, User
from accounts.selectors import api_key_get
from accounts.services._common import _fail, _require_admin
from agentstore.errors import Conflict, NotFound

MAX_ACTIVE_API_KEYS = 50


def api_key_create(
    user: User, *, name: str, expires_at: datetime | None = None, request: Any = None
) -> tuple[ApiKey, str]:
    """A new personal key. Returns the model and the plaintext, which is never stored."""
    name = (name or "").strip()
    if not name:
        raise _fail("name", _("This field is required."))
    if len(name) > 100:
        raise _fail("name", _("At most 100 characters."))
    if expires_at is not None:
        if timezone.is_naive(expires_at):
            raise _fail("expires_at", _("Include a time zone."))
        if expires_at <= timezone.now():
            raise _fail("expires_at", _("Must be in the future."))
    if ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_API_KEYS:
        raise Conflict(
            _("You have %(n)d active API keys; revoke one first.") % {"n": MAX_ACTIVE_API_KEYS}
        )
    raw, prefix, key_hash = tokens.generate_api_key()
    with transaction.atomic():
        key = ApiKey.objects.create(
            user=user, name=name, prefix=prefix, key_hash=key_hash, expires_at=expires_at
        )
        audit_record(
            user,
            action="api_key.create",
            obj=key,
            request=request,
            detail={"name": name, "prefix": prefix},
        )
    return key, raw


def api_key_revoke(user: User, *, key_id: Any, request: Any = None) -> None:
    """Revoke one of the user's own keys; another user's key is not found."""
    key = api_key_get(user, key_id=key_id)
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not updated:
            raise NotFound()
        audit_record(
            user, action="api_key.revoke", obj=key, request=request, detail={"prefix": key.prefix}
        )


def api_key_revoke_by_admin(actor: User, *, key: ApiKey, request: Any = None) -> bool:
    """An admin revokes any key (incident response). False when it was already revoked."""
    _require_admin(actor)
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit_record(
                actor,
                action="api_key.revoke",
                obj=key,
                request=request,
                detail={"prefix": key.prefix, "owner": str(key.user_id)},
            )
    return bool(updated)
