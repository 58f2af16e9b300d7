"""Admin user management: roles, status, per-user grants and revokes, deletion."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import PermissionOverride, Role, User
from accounts.services._common import (
    _apply_role,
    _check_password,
    _clean_email,
    _clean_username,
    _ensure_unique,
    _fail,
    _other_active_admins,
    _require_admin,
    _revoke_refresh_tokens,
)
from agentstore.errors import Conflict, ValidationFailed


def user_set_role(actor: User, *, user: User, role: str, request: Any = None) -> User:
    """Change a user's role; staff/superuser flags follow it. The last admin stays admin."""
    _require_admin(actor)
    if role not in Role.values:
        raise _fail("role", _("Choose one of: %(c)s.") % {"c": ", ".join(Role.values)})
    previous = user.role
    if previous == role and user.is_staff == (role in {Role.REVIEWER, Role.ADMIN}):
        return user
    if previous == Role.ADMIN and role != Role.ADMIN and not _other_active_admins(user).exists():
        raise Conflict(_("The last active admin cannot lose the admin role."))
    _apply_role(user, role)
    with transaction.atomic():
        user.save(update_fields=["role", "is_staff", "is_superuser"])
        audit_record(
            actor,
            action="user.set_role",
            obj=user,
            request=request,
            detail={"from": previous, "to": role},
        )
    return user


def _resolve_permissions(names: Iterable[str], *, field: str) -> list[Permission]:
    names = list(dict.fromkeys(names))
    found: list[Permission] = []
    missing: list[str] = []
    for name in names:
        app_label, dot, codename = str(name).partition(".")
        perm = (
            Permission.objects.select_related("content_type")
            .filter(content_type__app_label=app_label, codename=codename)
            .first()
            if dot and app_label and codename
            else None
        )
        if perm is None:
            missing.append(str(name))
        else:
            found.append(perm)
    if missing:
        raise ValidationFailed(
            details={
                field: [
                    _("Unknown permission '%(p)s' (use app_label.codename).") % {"p": name}
                    for name in missing
                ]
            }
        )
    return found


def _set_overrides(user: User, effect: str, perms: list[Permission]) -> None:
    wanted = {perm.pk for perm in perms}
    PermissionOverride.objects.filter(user=user, effect=effect).exclude(
        permission_id__in=wanted
    ).delete()
    for perm in perms:
        PermissionOverride.objects.update_or_create(
            user=user, permission=perm, defaults={"effect": effect}
        )
    if hasattr(user, "_permission_overrides_cache"):
        del user._permission_overrides_cache
    for cache_name in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        if hasattr(user, cache_name):
            delattr(user, cache_name)


def admin_user_create(
    actor: User,
    *,
    username: str,
    email: str,
    password: str,
    display_name: str = "",
    role: str = Role.USER,
    is_active: bool = True,
    request: Any = None,
) -> User:
    _require_admin(actor)
    username = _clean_username(username)
    email = _clean_email(email)
    display_name = (display_name or "").strip()
    if len(display_name) > 100:
        raise _fail("display_name", _("At most 100 characters."))
    if role not in Role.values:
        raise _fail("role", _("Choose one of: %(c)s.") % {"c": ", ".join(Role.values)})
    user = User(username=username, email=email, display_name=display_name, is_active=is_active)
    _apply_role(user, role)
    _check_password(password or "", user)
    _ensure_unique(username=username, email=email)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            audit_record(
                actor,
                action="user.create",
                obj=user,
                request=request,
                detail={"username": username, "role": role, "is_active": is_active},
            )
    except IntegrityError as exc:
        _ensure_unique(username=username, email=email)
        raise Conflict() from exc
    return user


def admin_user_update(
    actor: User,
    *,
    user: User,
    role: str | None = None,
    is_active: bool | None = None,
    display_name: str | None = None,
    email: str | None = None,
    grants: Iterable[str] | None = None,
    revokes: Iterable[str] | None = None,
    request: Any = None,
) -> User:
    """Change another user's role, status, name, email and per-user permission overrides.
    ``grants`` / ``revokes``, when given, replace the user's current lists."""
    _require_admin(actor)
    grant_perms = _resolve_permissions(grants, field="grants") if grants is not None else None
    revoke_perms = _resolve_permissions(revokes, field="revokes") if revokes is not None else None
    if grant_perms is not None and revoke_perms is not None:
        both = {p.pk for p in grant_perms} & {p.pk for p in revoke_perms}
        if both:
            raise _fail("revokes", _("A permission cannot be granted and revoked at once."))
    changed: dict[str, Any] = {}
    if display_name is not None:
        display_name = display_name.strip()
        if len(display_name) > 100:
            raise _fail("display_name", _("At most 100 characters."))
        if display_name != user.display_name:
            changed["display_name"] = display_name
    if email is not None:
        email = _clean_email(email)
        if email != user.email:
            _ensure_unique(email=email, exclude=user)
            changed["email"] = email
    if is_active is not None and is_active != user.is_active:
        if user.pk == actor.pk and not is_active:
            raise _fail("is_active", _("You cannot deactivate your own account."))
        if (
            not is_active
            and user.role == Role.ADMIN
            and role in (None, Role.ADMIN)
            and not _other_active_admins(user).exists()
        ):
            raise Conflict(_("The last active admin cannot be deactivated."))
        changed["is_active"] = is_active
    with transaction.atomic():
        if role is not None:
            user_set_role(actor, user=user, role=role, request=request)
        if changed:
            for name, value in changed.items():
                setattr(user, name, value)
            user.save(update_fields=list(changed))
            if changed.get("is_active") is False:
                _revoke_refresh_tokens(user)
        if grant_perms is not None:
            # A permission moved from revokes to grants must leave revokes first.
            _set_overrides(user, PermissionOverride.Effect.GRANT, grant_perms)
        if revoke_perms is not None:
            _set_overrides(user, PermissionOverride.Effect.REVOKE, revoke_perms)
        if changed or grants is not None or revokes is not None:
            detail: dict[str, Any] = {"fields": sorted(changed)}
            if "is_active" in changed:
                detail["is_active"] = changed["is_active"]
            if grants is not None:
                detail["grants"] = sorted(
                    f"{p.content_type.app_label}.{p.codename}" for p in grant_perms
                )
            if revokes is not None:
                detail["revokes"] = sorted(
                    f"{p.content_type.app_label}.{p.codename}" for p in revoke_perms
                )
            audit_record(actor, action="user.update", obj=user, request=request, detail=detail)
    return user


def admin_user_delete(actor: User, *, user: User, request: Any = None) -> None:
    _require_admin(actor)
    if user.pk == actor.pk:
        raise _fail("user", _("You cannot delete your own account."))
    if user.role == Role.ADMIN and not _other_active_admins(user).exists():
        raise Conflict(_("The last active admin cannot be deleted."))
    object_id, username = str(user.pk), user.username
    try:
        with transaction.atomic():
            audit_record(
                actor,
                action="user.delete",
                object_type=user._meta.label_lower,
                object_id=object_id,
                request=request,
                detail={"username": username},
            )
            user.delete()
    except ProtectedError as exc:
        raise Conflict(
            _("This user owns objects that must be kept; deactivate the account instead.")
        ) from exc


def admin_user_save_form(
    actor: User,
    *,
    user: User,
    role: str,
    changed_fields: Iterable[str] = (),
    created: bool = False,
    request: Any = None,
) -> User:
    """Persist a user edited in the Django admin's form (validated there). The role goes
    through :func:`user_set_role`, so staff/superuser flags follow it."""
    _require_admin(actor)
    changed = sorted(set(changed_fields) - {"role", "password", "password1", "password2"})
    with transaction.atomic():
        if created:
            _apply_role(user, Role.USER)
            user.save()
            audit_record(
                actor,
                action="user.create",
                obj=user,
                request=request,
                detail={"username": user.username},
            )
        else:
            # The form may not bypass the role rules: keep the stored role and flags here.
            was_active, user.role, user.is_staff, user.is_superuser = (
                User.objects.filter(pk=user.pk)
                .values_list("is_active", "role", "is_staff", "is_superuser")
                .get()
            )
            if was_active and not user.is_active:
                if user.pk == actor.pk:
                    raise _fail("is_active", _("You cannot deactivate your own account."))
                if user.role == Role.ADMIN and not _other_active_admins(user).exists():
                    raise Conflict(_("The last active admin cannot be deactivated."))
            user.save()
            if was_active and not user.is_active:
                _revoke_refresh_tokens(user)
            if changed:
                audit_record(
                    actor,
                    action="user.update",
                    obj=user,
                    request=request,
                    detail={"fields": changed},
                )
        if role != user.role:
            user_set_role(actor, user=user, role=role, request=request)
    return user


def user_password_set_by_admin(actor: User, *, user: User, request: Any = None) -> None:
    """After an admin set a user's password: end the user's token sessions and record it.
    (Access tokens already fail, since they carry a fingerprint of the password hash.)"""
    _require_admin(actor)
    with transaction.atomic():
        revoked = _revoke_refresh_tokens(user)
        audit_record(
            actor,
            action="user.password_set",
            obj=user,
            request=request,
            detail={"sessions_revoked": revoked},
        )
