"""accounts.services called directly (as the web pages do) and the initial-admin command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from accounts import services
from accounts.models import ApiKey, AuditLog, PermissionOverride, RefreshToken, Role, User
from accounts.tests.factories import PASSWORD, UserFactory
from agentstore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

NEW_PASSWORD = "a-much-better-Secret-42"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def test_user_register_returns_a_saved_user(db):
    user = services.user_register(
        username=" carol ", email="carol@example.com", password=NEW_PASSWORD, display_name="C"
    )

    assert User.objects.get(pk=user.pk).username == "carol"
    assert (user.role, user.display_name, user.is_staff) == (Role.USER, "C", False)


def test_user_register_password_similar_to_username_is_refused(db):
    with pytest.raises(ValidationFailed) as caught:
        services.user_register(username="carolina", email="c@example.com", password="carolina1")

    assert list(caught.value.details) == ["password"]


def test_user_register_duplicate_email_is_conflict(user):
    with pytest.raises(Conflict) as caught:
        services.user_register(username="x", email="Alice@Example.com", password=NEW_PASSWORD)

    assert caught.value.code == 40901
    assert list(caught.value.details) == ["email"]


def test_user_update_refuses_unknown_fields(user):
    with pytest.raises(ValidationFailed) as caught:
        services.user_update(user, role="admin")

    assert caught.value.details == {"role": ["Unknown field."]}
    assert User.objects.get(pk=user.pk).role == Role.USER


def test_user_update_without_changes_writes_nothing(user, django_assert_num_queries):
    with django_assert_num_queries(0):
        services.user_update(user, theme="system", display_name="Alice")


def test_user_update_email_and_theme(user, other_user):
    services.user_update(user, email="alice2@example.com", theme="light")

    assert User.objects.filter(pk=user.pk, email="alice2@example.com", theme="light").exists()
    assert User.objects.get(pk=other_user.pk).email == "bob@example.com"


def test_user_change_password_wrong_old_password(user):
    with pytest.raises(ValidationFailed) as caught:
        services.user_change_password(user, old_password="nope", new_password=NEW_PASSWORD)

    assert list(caught.value.details) == ["old_password"]


def test_user_change_password_revokes_only_that_users_refresh_tokens(user, other_user):
    services.login_issue_tokens(user)
    services.login_issue_tokens(user)
    services.login_issue_tokens(other_user)

    services.user_change_password(user, old_password=PASSWORD, new_password=NEW_PASSWORD)

    assert RefreshToken.objects.filter(user=user, revoked_at__isnull=True).count() == 0
    assert RefreshToken.objects.filter(user=other_user, revoked_at__isnull=True).count() == 1
    row = AuditLog.objects.get(action="user.password_change")
    assert row.detail == {"sessions_revoked": 2}


def test_api_key_revoke_of_another_users_key_is_not_found(user, other_user):
    key, _ = services.api_key_create(user, name="a")

    with pytest.raises(NotFound):
        services.api_key_revoke(other_user, key_id=key.pk)

    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_api_key_limit_per_user(user, other_user, monkeypatch):
    monkeypatch.setattr(services.api_keys, "MAX_ACTIVE_API_KEYS", 2)
    services.api_key_create(user, name="1")
    services.api_key_create(user, name="2")

    with pytest.raises(Conflict):
        services.api_key_create(user, name="3")

    services.api_key_create(other_user, name="bob's first")
    assert ApiKey.objects.filter(user=user).count() == 2


def test_api_key_revoke_by_admin(admin_user, user):
    key, _ = services.api_key_create(user, name="leaked")

    assert services.api_key_revoke_by_admin(admin_user, key=key) is True
    assert services.api_key_revoke_by_admin(admin_user, key=key) is False
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


@pytest.mark.parametrize("actor_fixture", ["user", "developer", "reviewer"])
def test_admin_services_refuse_non_admins(request, other_user, actor_fixture):
    actor = request.getfixturevalue(actor_fixture)

    with pytest.raises(PermissionDenied):
        services.user_set_role(actor, user=other_user, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.admin_user_update(actor, user=other_user, is_active=False)
    with pytest.raises(PermissionDenied):
        services.admin_user_delete(actor, user=other_user)
    with pytest.raises(PermissionDenied):
        services.admin_user_create(
            actor, username="x", email="x@example.com", password=NEW_PASSWORD
        )

    other_user.refresh_from_db()
    assert (other_user.role, other_user.is_active) == (Role.USER, True)


def test_superuser_without_admin_role_counts_as_admin(user, other_user):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)

    services.user_set_role(root, user=other_user, role=Role.DEVELOPER)

    assert User.objects.get(pk=other_user.pk).role == Role.DEVELOPER


def test_revokes_take_a_permission_of_the_role_away(admin_user, reviewer, other_user):
    assert User.objects.get(pk=reviewer.pk).has_perm("accounts.view_auditlog")

    services.admin_user_update(admin_user, user=reviewer, revokes=["accounts.view_auditlog"])

    assert not User.objects.get(pk=reviewer.pk).has_perm("accounts.view_auditlog")
    assert PermissionOverride.objects.filter(user=other_user).count() == 0


def test_admin_user_delete_keeps_the_audit_row(admin_user, user):
    services.admin_user_delete(admin_user, user=user)

    row = AuditLog.objects.get(action="user.delete")
    assert row.actor == admin_user
    assert not User.objects.filter(username="alice").exists()


# --- initial admin ----------------------------------------------------------------------------


def test_ensure_initial_admin_creates_an_admin(db, settings):
    settings.INITIAL_ADMIN_EMAIL = "Root@Example.com"
    settings.INITIAL_ADMIN_PASSWORD = NEW_PASSWORD
    out = StringIO()

    call_command("ensure_initial_admin", stdout=out)

    admin = User.objects.get(role=Role.ADMIN)
    assert (admin.username, admin.email) == ("Root", "Root@example.com")
    assert (admin.is_staff, admin.is_superuser, admin.is_active) == (True, True, True)
    assert admin.check_password(NEW_PASSWORD)
    assert "initial admin created: Root" in out.getvalue()
    row = AuditLog.objects.get(action="user.create_initial_admin")
    assert (row.via, row.actor) == ("system", None)
    assert NEW_PASSWORD not in json.dumps(row.detail)


def test_ensure_initial_admin_is_a_no_op_when_an_admin_exists(admin_user, settings):
    settings.INITIAL_ADMIN_EMAIL = "root@example.com"
    settings.INITIAL_ADMIN_PASSWORD = NEW_PASSWORD
    out = StringIO()

    call_command("ensure_initial_admin", stdout=out)

    assert list(User.objects.filter(role=Role.ADMIN).values_list("username", flat=True)) == ["ada"]
    assert "nothing to do" in out.getvalue()


def test_ensure_initial_admin_without_settings_does_nothing(db, settings):
    settings.INITIAL_ADMIN_EMAIL = ""
    settings.INITIAL_ADMIN_PASSWORD = ""

    call_command("ensure_initial_admin", stdout=StringIO())

    assert not User.objects.filter(role=Role.ADMIN).exists()


def test_ensure_initial_admin_never_promotes_an_existing_account(user, settings):
    settings.INITIAL_ADMIN_EMAIL = "alice@example.com"
    settings.INITIAL_ADMIN_PASSWORD = NEW_PASSWORD

    with pytest.raises(CommandError, match="already uses alice@example.com"):
        call_command("ensure_initial_admin", stdout=StringIO())

    assert User.objects.get(pk=user.pk).role == Role.USER


def test_ensure_initial_admin_picks_a_free_username(user, settings):
    settings.INITIAL_ADMIN_EMAIL = "alice@admin.example.com"
    settings.INITIAL_ADMIN_PASSWORD = NEW_PASSWORD

    call_command("ensure_initial_admin", stdout=StringIO())

    assert User.objects.get(role=Role.ADMIN).username == "alice2"


def test_ensure_initial_admin_refuses_a_weak_password(db, settings):
    settings.INITIAL_ADMIN_EMAIL = "root@example.com"
    settings.INITIAL_ADMIN_PASSWORD = "admin"

    with pytest.raises(CommandError, match="password"):
        call_command("ensure_initial_admin", stdout=StringIO())

    assert not User.objects.filter(role=Role.ADMIN).exists()
