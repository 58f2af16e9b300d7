"""Helpers shared by the account services: input cleaning, uniqueness, role flags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import SESSION_KEY, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import tokens
from accounts.models import RefreshToken, Role, User
from accounts.selectors import is_admin
from agentstore.errors import Conflict, PermissionDenied, ValidationFailed

USER_UPDATABLE_FIELDS = ("display_name", "avatar_url", "theme", "language", "email")
_username_validator = User.username_validator


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(details={field: [message]})


def _clean_username(username: str) -> str:
    username = (username or "").strip()
    if not username:
        raise _fail("username", _("This field is required."))
    if len(username) > 150:
        raise _fail("username", _("At most 150 characters."))
    if "@" in username:
        # Login accepts a username or an email; a username shaped like an email could
        # shadow another account's address.
        raise _fail("username", _("A username cannot contain '@'."))
    try:
        _username_validator(username)
    except DjangoValidationError as exc:
        raise ValidationFailed(details={"username": list(exc.messages)}) from exc
    return username


def _clean_email(email: str) -> str:
    email = User.objects.normalize_email((email or "").strip())
    if not email:
        raise _fail("email", _("This field is required."))
    if len(email) > 254:
        raise _fail("email", _("At most 254 characters."))
    try:
        EmailValidator()(email)
    except DjangoValidationError as exc:
        raise ValidationFailed(details={"email": list(exc.messages)}) from exc
    return email


def _check_password(password: str, user: User, *, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed(details={field: list(exc.messages)}) from exc


def _ensure_unique(*, username: str | None = None, email: str | None = None, exclude=None) -> None:
    others = User.objects.all()
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    if username is not None and others.filter(username__iexact=username).exists():
        raise Conflict(
            _("This username is already taken."),
            details={"username": [_("This username is already taken.")]},
        )
    if email is not None and others.filter(email__iexact=email).exists():
        raise Conflict(
            _("An account with this email already exists."),
            details={"email": [_("An account with this email already exists.")]},
        )


def _require_admin(actor: User | None) -> None:
    if not is_admin(actor):
        raise PermissionDenied()


def _revoke_refresh_tokens(user: User, *, now: datetime | None = None) -> int:
    now = now or timezone.now()
    families = list(
        RefreshToken.objects.filter(user=user, revoked_at__isnull=True)
        .values_list("family", flat=True)
        .distinct()
    )
    count = RefreshToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)
    for family in families:
        tokens.deny_family(family)
    return count


def _is_session_user(request: Any, user: User) -> bool:
    session = getattr(request, "session", None) if request is not None else None
    return session is not None and session.get(SESSION_KEY) == str(user.pk)


def _other_active_admins(user: User):
    return User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=user.pk)


def _apply_role(user: User, role: str) -> None:
    user.role = role
    user.is_staff = role in {Role.REVIEWER, Role.ADMIN}
    user.is_superuser = role == Role.ADMIN
