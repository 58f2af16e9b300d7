"""Authentication backend: username *or* email login, and per-user revokes (SPEC §3)."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db.models import Q

from accounts.models import PermissionOverride, User
from accounts.roles import group_name


class RoleAwareBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        login = username or kwargs.get("email")
        if not login or password is None:
            return None
        user = User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login)).first()
        if user is None:
            # Same cost as a real check, so timing does not reveal which accounts exist.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

    def _get_group_permissions(self, user_obj):
        # The role field is the source of truth; its group (accounts.roles) holds the
        # permissions. Extra groups a user was put in by hand count too.
        return Permission.objects.filter(
            Q(group__user=user_obj) | Q(group__name=group_name(user_obj.role))
        ).distinct()

    def _overrides(self, user_obj: User) -> tuple[set[str], set[str]]:
        cache_name = "_permission_overrides_cache"
        if not hasattr(user_obj, cache_name):
            grants, revokes = set(), set()
            rows = PermissionOverride.objects.filter(user=user_obj).values_list(
                "effect", "permission__content_type__app_label", "permission__codename"
            )
            for effect, app_label, codename in rows:
                target = grants if effect == PermissionOverride.Effect.GRANT else revokes
                target.add(f"{app_label}.{codename}")
            setattr(user_obj, cache_name, (grants, revokes))
        return getattr(user_obj, cache_name)

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        base = set(super().get_all_permissions(user_obj, obj))
        grants, revokes = self._overrides(user_obj)
        return (base | grants) - revokes
