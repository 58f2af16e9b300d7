"""JWT token sessions: login, refresh rotation with reuse detection, logout."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import tokens
from accounts.audit import audit_record, client_ip
from accounts.models import RefreshToken, User
from agentstore.errors import AuthenticationFailed

LOGIN_FAILED_CODE = 40103
TOKEN_INVALID_CODE = 40102


def _token_pair(user: User, *, family: uuid.UUID, request: Any, now: datetime) -> dict[str, Any]:
    raw, token_hash = tokens.generate_refresh_token()
    RefreshToken.objects.create(
        user=user,
        token_hash=token_hash,
        family=family,
        expires_at=now + settings.JWT_REFRESH_TTL,
        ip=client_ip(request),
    )
    return {
        "access_token": tokens.issue_access_token(user, family=family, now=now),
        "refresh_token": raw,
        "token_type": "Bearer",
        "expires_in": tokens.access_token_ttl_seconds(),
        "user": user,
    }


def auth_login(*, login: str, password: str, request: Any = None) -> dict[str, Any]:
    """Check credentials and issue tokens. Every failure has the same message (no account
    enumeration): wrong password, unknown user, inactive user."""
    django_request = getattr(request, "_request", request)
    user = authenticate(django_request, username=login or "", password=password or "")
    if user is None:
        audit_record(
            None,
            action="auth.login_failed",
            request=request,
            via="api",
            detail={"login": (login or "")[:150]},
        )
        raise AuthenticationFailed(_("Invalid username or password."), code=LOGIN_FAILED_CODE)
    return login_issue_tokens(user, request=request)


def login_issue_tokens(user: User, *, request: Any = None) -> dict[str, Any]:
    """Start a token session for an authenticated user: access + refresh token."""
    now = timezone.now()
    with transaction.atomic():
        pair = _token_pair(user, family=uuid.uuid4(), request=request, now=now)
        User.objects.filter(pk=user.pk).update(last_login=now)
        user.last_login = now
        audit_record(user, action="auth.login", obj=user, request=request, via="api")
    return pair


def _invalid_refresh(message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, code=TOKEN_INVALID_CODE)


def token_refresh(*, refresh_token: str, request: Any = None) -> dict[str, Any]:
    """Rotate a refresh token. A token that was already rotated is being replayed: the
    whole family (this login) is revoked and the caller must log in again."""
    token_hash = tokens.hash_secret(refresh_token or "")
    now = timezone.now()
    failure: str | None = None
    with transaction.atomic():
        token = (
            RefreshToken.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(token_hash=token_hash)
            .first()
        )
        if token is None:
            failure = _("Invalid refresh token.")
        elif token.revoked_at is not None:
            failure = _("Refresh token revoked.")
        elif token.rotated_at is not None:
            RefreshToken.objects.filter(family=token.family, revoked_at__isnull=True).update(
                revoked_at=now
            )
            tokens.deny_family(token.family)
            audit_record(
                token.user,
                action="auth.refresh_reuse",
                obj=token.user,
                request=request,
                via="api",
                detail={"family": str(token.family)},
            )
            failure = _("Refresh token reuse detected; please log in again.")
        elif token.expires_at <= now:
            failure = _("Refresh token expired.")
        elif not token.user.is_active:
            failure = _("User inactive or deleted.")
        else:
            token.rotated_at = now
            token.save(update_fields=["rotated_at"])
            pair = _token_pair(token.user, family=token.family, request=request, now=now)
            audit_record(
                token.user, action="auth.refresh", obj=token.user, request=request, via="api"
            )
    # Raised after the block, so the family revocation above is committed.
    if failure is not None:
        raise _invalid_refresh(failure)
    return pair


def token_logout(*, refresh_token: str, request: Any = None) -> None:
    """End a token session: its refresh tokens and its access tokens stop working."""
    token = (
        RefreshToken.objects.select_related("user")
        .filter(token_hash=tokens.hash_secret(refresh_token or ""))
        .first()
    )
    if token is None:
        raise _invalid_refresh(_("Invalid refresh token."))
    with transaction.atomic():
        RefreshToken.objects.filter(family=token.family, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        audit_record(token.user, action="auth.logout", obj=token.user, request=request, via="api")
    tokens.deny_family(token.family)
