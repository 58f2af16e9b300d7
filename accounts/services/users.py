"""Registration, profile and preferences, password changes, the initial admin."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import Role, Theme, User
from accounts.services._common import (
    USER_UPDATABLE_FIELDS,
    _apply_role,
    _check_password,
    _clean_email,
    _clean_username,
    _ensure_unique,
    _fail,
    _is_session_user,
    _revoke_refresh_tokens,
)
from agentstore.errors import Conflict, ValidationFailed


def user_register(
    *,
    username: str,
    email: str,
    password: str,
    display_name: str = "",
    request: Any = None,
) -> User:
    """A new account with role ``user``. Duplicate username or email is a Conflict (40901)."""
    username = _clean_username(username)
    email = _clean_email(email)
    display_name = (display_name or "").strip()
    if len(display_name) > 100:
        raise _fail("display_name", _("At most 100 characters."))
    user = User(username=username, email=email, display_name=display_name, role=Role.USER)
    _check_password(password or "", user)
    _ensure_unique(username=username, email=email)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            audit_record(user, action="user.register", obj=user, request=request)
    except IntegrityError as exc:  # a concurrent registration won the race
        _ensure_unique(username=username, email=email)
        raise Conflict() from exc
    return user


def user_update(user: User, *, request: Any = None, **fields: Any) -> User:
    """Change the caller's own profile and preferences (display_name, avatar_url, theme,
    language, email)."""
    unknown = sorted(set(fields) - set(USER_UPDATABLE_FIELDS))
    if unknown:
        raise ValidationFailed(details={name: [_("Unknown field.")] for name in unknown})
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        value = "" if value is None else value
        if not isinstance(value, str):
            errors[name] = [_("Must be a string.")]
            continue
        value = value.strip()
        if name == "email":
            try:
                value = _clean_email(value)
            except ValidationFailed as exc:
                errors.update(exc.details)
                continue
        elif name == "display_name" and len(value) > 100:
            errors[name] = [_("At most 100 characters.")]
        elif name == "avatar_url" and value:
            if len(value) > 500:
                errors[name] = [_("At most 500 characters.")]
            else:
                try:
                    URLValidator(schemes=["http", "https"])(value)
                except DjangoValidationError:
                    errors[name] = [_("Enter a valid http(s) URL.")]
        elif name == "theme" and value not in Theme.values:
            errors[name] = [_("Choose one of: %(c)s.") % {"c": ", ".join(Theme.values)}]
        elif name == "language" and value and value not in dict(settings.LANGUAGES):
            errors[name] = [
                _("Choose one of: %(c)s.")
                % {"c": ", ".join(code for code, _n in settings.LANGUAGES)}
            ]
        if getattr(user, name) != value:
            changes[name] = value
    if errors:
        raise ValidationFailed(details=errors)
    if not changes:
        return user
    if "email" in changes:
        _ensure_unique(email=changes["email"], exclude=user)
    for name, value in changes.items():
        setattr(user, name, value)
    try:
        with transaction.atomic():
            user.save(update_fields=list(changes))
            audit_record(
                user,
                action="user.update",
                obj=user,
                request=request,
                detail={"fields": sorted(changes)},
            )
    except IntegrityError as exc:
        raise Conflict(
            _("An account with this email already exists."),
            details={"email": [_("An account with this email already exists.")]},
        ) from exc
    return user


def user_change_password(
    user: User, *, old_password: str, new_password: str, request: Any = None
) -> None:
    """Change the password; every refresh token and access token of the user stops working.
    A session that made the request stays logged in."""
    if not user.check_password(old_password or ""):
        raise _fail("old_password", _("Your old password was entered incorrectly."))
    _check_password(new_password or "", user, field="new_password")
    user.set_password(new_password)
    with transaction.atomic():
        user.save(update_fields=["password"])
        revoked = _revoke_refresh_tokens(user)
        audit_record(
            user,
            action="user.password_change",
            obj=user,
            request=request,
            detail={"sessions_revoked": revoked},
        )
    if _is_session_user(request, user):
        update_session_auth_hash(request, user)


def initial_admin_ensure(*, email: str, password: str) -> User | None:
    """Create the first admin (username = the part of ``email`` before @) when no admin
    exists. Returns None when there is nothing to do. An existing account with that email
    is never promoted: anyone could have registered it."""
    if User.objects.filter(role=Role.ADMIN).exists() or not email or not password:
        return None
    email = _clean_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict(
            _("A non-admin account already uses %(email)s; choose another INITIAL_ADMIN_EMAIL.")
            % {"email": email}
        )
    base = _clean_username(email.split("@", 1)[0][:140])
    username, n = base, 1
    while User.objects.filter(username__iexact=username).exists():
        n += 1
        username = f"{base}{n}"
    user = User(username=username, email=email)
    _apply_role(user, Role.ADMIN)
    _check_password(password, user)
    user.set_password(password)
    with transaction.atomic():
        user.save()
        audit_record(
            None,
            action="user.create_initial_admin",
            obj=user,
            via="system",
            detail={"username": username},
        )
    return user
