"""Account reads, scoped to the acting user (STYLE §2)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from accounts.models import ApiKey, PermissionOverride, Role, User
from agentstore.errors import NotFound


def _as_uuid(value: Any) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise NotFound() from exc


def api_key_list(user: User) -> QuerySet[ApiKey]:
    """The user's keys that are not revoked (expired ones stay visible until revoked)."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "-id")


def api_key_get(user: User, *, key_id: Any) -> ApiKey:
    """One of the user's own active keys; anything else is not found."""
    key = api_key_list(user).filter(pk=_as_uuid(key_id)).first()
    if key is None:
        raise NotFound()
    return key


def is_admin(actor: User | None) -> bool:
    """Role admin (a superuser made with ``createsuperuser`` counts too)."""
    return bool(
        actor is not None
        and actor.is_authenticated
        and actor.is_active
        and (actor.role == Role.ADMIN or actor.is_superuser)
    )


def user_list_for_admin(
    actor: User,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    q: str | None = None,
) -> QuerySet[User]:
    """Every user, with their permission overrides, for an admin; nothing for anyone else."""
    if not is_admin(actor):
        return User.objects.none()
    users = User.objects.prefetch_related(
        Prefetch(
            "permission_overrides",
            queryset=PermissionOverride.objects.select_related("permission__content_type"),
        )
    ).order_by("username")
    if role:
        users = users.filter(role=role)
    if is_active is not None:
        users = users.filter(is_active=is_active)
    if q:
        users = users.filter(
            Q(username__icontains=q) | Q(email__icontains=q) | Q(display_name__icontains=q)
        )
    return users


def user_get_for_admin(actor: User, *, user_id: Any) -> User:
    user = user_list_for_admin(actor).filter(pk=_as_uuid(user_id)).first()
    if user is None:
        raise NotFound()
    return user


def user_permission_overrides(user: User) -> tuple[list[str], list[str]]:
    """(grants, revokes) as sorted "app_label.codename" strings; uses a prefetch if present."""
    grants: list[str] = []
    revokes: list[str] = []
    for row in user.permission_overrides.all():
        name = f"{row.permission.content_type.app_label}.{row.permission.codename}"
        (grants if row.effect == PermissionOverride.Effect.GRANT else revokes).append(name)
    return sorted(grants), sorted(revokes)
