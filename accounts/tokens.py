"""JWT access tokens, opaque refresh tokens and personal API keys (SPEC §3).

- Access tokens are HS256 JWTs signed with ``SECRET_KEY`` (``sub`` = user id, ``type`` =
  ``access``, ``exp``/``iat``/``jti``, ``fam`` = the refresh-token family of the login and
  ``pwd`` = a fingerprint of the password hash, so a password change ends them at once).
- Refresh tokens and API keys are long random strings; only their SHA-256 is stored.
- A logged-out or reuse-revoked family is put on a short cache denylist so its access
  tokens stop working before they expire.

This module only mints and checks credentials; the writes that go with them (issue,
rotate, revoke) are services in ``accounts.services``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import timedelta
from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from accounts.models import ApiKey, User

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "sk-"
API_KEY_VISIBLE_CHARS = 11  # "sk-" + 8 random characters, enough to tell keys apart
JWT_ALGORITHM = "HS256"
LAST_USED_RESOLUTION = timedelta(minutes=1)
_FAMILY_DENYLIST_KEY = "accounts:jwt:revoked-family:{}"


class TokenError(Exception):
    """A credential was presented but is not valid; ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def hash_secret(raw: str) -> str:
    # Keys and refresh tokens carry ≥ 256 bits of randomness: a fast hash is enough
    # and lets us look them up by an indexed column.
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


# --- API keys ---------------------------------------------------------------------------------


def generate_api_key() -> tuple[str, str, str]:
    """A new key: (plaintext, visible prefix, hash)."""
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return raw, raw[:API_KEY_VISIBLE_CHARS], hash_secret(raw)


def looks_like_api_key(raw: str) -> bool:
    return raw.startswith(API_KEY_PREFIX)


def resolve_api_key(raw: str) -> ApiKey:
    """The active key for ``raw`` (with its user loaded), or :class:`TokenError`."""
    if not looks_like_api_key(raw) or len(raw) > 200:
        raise TokenError(_("Invalid API key."))
    key = ApiKey.objects.select_related("user").filter(key_hash=hash_secret(raw)).first()
    if key is None:
        raise TokenError(_("Invalid API key."))
    now = timezone.now()
    if key.revoked_at is not None:
        raise TokenError(_("API key revoked."))
    if key.expires_at is not None and key.expires_at <= now:
        raise TokenError(_("API key expired."))
    if not key.user.is_active:
        raise TokenError(_("User inactive or deleted."))
    touch_api_key(key, now=now)
    return key


def touch_api_key(key: ApiKey, *, now=None) -> None:
    """Record use at most once a minute per key, with one conditional UPDATE."""
    now = now or timezone.now()
    stale_before = now - LAST_USED_RESOLUTION
    if key.last_used_at is not None and key.last_used_at > stale_before:
        return
    ApiKey.objects.filter(pk=key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale_before)
    ).update(last_used_at=now)
    key.last_used_at = now


# --- refresh tokens ---------------------------------------------------------------------------


def generate_refresh_token() -> tuple[str, str]:
    """A new refresh token: (plaintext, hash)."""
    raw = secrets.token_urlsafe(48)
    return raw, hash_secret(raw)


def deny_family(family: uuid.UUID | str) -> None:
    """Access tokens of this login family stop working (until they would have expired)."""
    ttl = int(settings.JWT_ACCESS_TTL.total_seconds()) + 60
    cache.set(_FAMILY_DENYLIST_KEY.format(family), 1, timeout=ttl)


def family_denied(family: str) -> bool:
    return bool(cache.get(_FAMILY_DENYLIST_KEY.format(family)))


# --- access tokens ----------------------------------------------------------------------------


def _password_fingerprint(user: User) -> str:
    return salted_hmac(
        "accounts.tokens.access", user.password or "", algorithm="sha256"
    ).hexdigest()[:16]


def access_token_ttl_seconds() -> int:
    return int(settings.JWT_ACCESS_TTL.total_seconds())


def issue_access_token(user: User, *, family: uuid.UUID | str, now=None) -> str:
    now = now or timezone.now()
    payload = {
        "sub": str(user.pk),
        "type": "access",
        "jti": uuid.uuid4().hex,
        "fam": str(family),
        "pwd": _password_fingerprint(user),
        "iat": int(now.timestamp()),
        "exp": int((now + settings.JWT_ACCESS_TTL).timestamp()),
    }
    return jwt.encode(payload, settings.SECRET_KEY, algorithm=JWT_ALGORITHM)


def decode_access_token(raw: str) -> dict[str, Any]:
    """The verified claims of ``raw``, or :class:`TokenError`."""
    try:
        claims = jwt.decode(
            raw,
            settings.SECRET_KEY,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "jti", "type"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError(_("Token expired.")) from exc
    except jwt.PyJWTError as exc:
        raise TokenError(_("Invalid token.")) from exc
    if claims.get("type") != "access":
        raise TokenError(_("Invalid token."))
    return claims


def resolve_access_token(raw: str) -> tuple[User, dict[str, Any]]:
    """The active user and claims for an access token, or :class:`TokenError`."""
    claims = decode_access_token(raw)
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise TokenError(_("Invalid token.")) from exc
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        raise TokenError(_("User inactive or deleted."))
    if not constant_time_compare(str(claims.get("pwd", "")), _password_fingerprint(user)):
        raise TokenError(_("Token revoked."))
    family = str(claims.get("fam", ""))
    if family and family_denied(family):
        raise TokenError(_("Token revoked."))
    return user, claims


def user_for_token(token: str) -> User | None:
    """The active user for a JWT access token or an ``sk-`` key (WebSocket auth), else None."""
    token = (token or "").strip()
    if not token:
        return None
    try:
        if looks_like_api_key(token):
            return resolve_api_key(token).user
        return resolve_access_token(token)[0]
    except TokenError:
        return None
