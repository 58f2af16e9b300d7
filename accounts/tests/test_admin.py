"""Django admin for accounts: roles through the service, read-only audit log and keys."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, AuditLog, PermissionOverride, RefreshToken, Role, User
from accounts.services import api_key_create, login_issue_tokens

NEW_PASSWORD = "a-much-better-Secret-42"


@pytest.fixture
def admin_web(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def change_form(user: User, **changes) -> dict:
    data = {
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "role": user.role,
        "theme": user.theme,
        "language": user.language,
        "is_active": "on" if user.is_active else "",
        "permission_overrides-TOTAL_FORMS": "0",
        "permission_overrides-INITIAL_FORMS": "0",
        "permission_overrides-MIN_NUM_FORMS": "0",
        "permission_overrides-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None and v != ""}


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:accounts_user_changelist",
        "admin:accounts_user_add",
        "admin:accounts_auditlog_changelist",
        "admin:accounts_apikey_changelist",
        "admin:accounts_refreshtoken_changelist",
    ],
)
def test_admin_pages_render(admin_web, user, url_name):
    api_key_create(user, name="k")
    login_issue_tokens(user)

    response = admin_web.get(reverse(url_name))

    assert response.status_code == 200


def test_user_change_page_renders_with_inline(admin_web, user):
    response = admin_web.get(reverse("admin:accounts_user_change", args=[user.pk]))

    assert response.status_code == 200
    assert b"permission_overrides-TOTAL_FORMS" in response.content


def test_role_change_in_admin_goes_through_the_service(admin_web, admin_user, user, other_user):
    response = admin_web.post(
        reverse("admin:accounts_user_change", args=[user.pk]),
        change_form(user, role=Role.REVIEWER, display_name="Alice R."),
    )

    assert response.status_code == 302
    user.refresh_from_db()
    other_user.refresh_from_db()
    assert (user.role, user.is_staff, user.is_superuser, user.display_name) == (
        Role.REVIEWER,
        True,
        False,
        "Alice R.",
    )
    assert other_user.role == Role.USER
    rows = dict(AuditLog.objects.filter(object_id=str(user.pk)).values_list("action", "detail"))
    assert rows == {
        "user.update": {"fields": ["display_name"]},
        "user.set_role": {"from": "user", "to": "reviewer"},
    }


def test_the_last_admin_cannot_be_demoted_in_admin(admin_web, admin_user):
    response = admin_web.post(
        reverse("admin:accounts_user_change", args=[admin_user.pk]),
        change_form(admin_user, role=Role.USER),
    )

    assert response.status_code == 200
    assert b"last active admin" in response.content
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN


def test_admin_adds_a_user_with_a_role(admin_web, admin_user):
    response = admin_web.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "dev2",
            "email": "dev2@example.com",
            "display_name": "Dev Two",
            "role": Role.DEVELOPER,
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "permission_overrides-TOTAL_FORMS": "0",
            "permission_overrides-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    created = User.objects.get(username="dev2")
    assert (created.role, created.is_staff) == (Role.DEVELOPER, False)
    assert created.check_password(NEW_PASSWORD)
    actions = list(
        AuditLog.objects.filter(object_id=str(created.pk))
        .order_by("id")
        .values_list("action", "via")
    )
    assert actions == [("user.create", "admin"), ("user.set_role", "admin")]


def test_permission_override_inline_is_saved_through_the_service(admin_web, user, other_user):
    perm = Permission.objects.get(content_type__app_label="accounts", codename="view_auditlog")

    response = admin_web.post(
        reverse("admin:accounts_user_change", args=[user.pk]),
        change_form(
            user,
            **{
                "permission_overrides-TOTAL_FORMS": "1",
                "permission_overrides-0-permission": str(perm.pk),
                "permission_overrides-0-effect": "grant",
                "permission_overrides-0-user": str(user.pk),
            },
        ),
    )

    assert response.status_code == 302
    assert list(PermissionOverride.objects.values_list("user", "effect")) == [(user.pk, "grant")]
    assert User.objects.get(pk=user.pk).has_perm("accounts.view_auditlog")
    assert not User.objects.get(pk=other_user.pk).has_perm("accounts.view_auditlog")
    row = AuditLog.objects.get(action="user.update", object_id=str(user.pk))
    assert row.detail["grants"] == ["accounts.view_auditlog"]


def test_admin_password_change_ends_token_sessions(admin_web, user, other_user):
    login_issue_tokens(user)
    login_issue_tokens(other_user)

    response = admin_web.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert response.status_code == 302
    assert not RefreshToken.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert RefreshToken.objects.filter(user=other_user, revoked_at__isnull=True).count() == 1
    assert AuditLog.objects.filter(action="user.password_set", object_id=str(user.pk)).exists()


def test_audit_log_is_read_only(admin_web, user):
    api_key_create(user, name="k")
    row = AuditLog.objects.filter(action="api_key.create").get()

    add = admin_web.get(reverse("admin:accounts_auditlog_add"))
    view = admin_web.get(reverse("admin:accounts_auditlog_change", args=[row.pk]))
    delete = admin_web.post(
        reverse("admin:accounts_auditlog_delete", args=[row.pk]), {"post": "yes"}
    )

    assert add.status_code == 403
    assert view.status_code == 200
    assert b'name="action"' not in view.content  # shown, not editable
    assert delete.status_code == 403
    assert AuditLog.objects.filter(pk=row.pk).exists()


def test_audit_log_filters_by_action(admin_web, user, other_user):
    api_key_create(user, name="k")
    login_issue_tokens(other_user)

    response = admin_web.get(
        reverse("admin:accounts_auditlog_changelist"), {"action": "api_key.create"}
    )

    assert response.status_code == 200
    assert list(response.context["cl"].queryset.values_list("actor__username", flat=True)) == [
        "alice"
    ]


def test_reviewer_can_read_the_audit_log_but_not_users(reviewer):
    client = Client()
    client.force_login(reviewer)

    assert client.get(reverse("admin:accounts_auditlog_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 403
    assert client.get(reverse("admin:accounts_apikey_changelist")).status_code == 403


def test_api_key_admin_shows_the_prefix_never_the_hash(admin_web, user):
    key, raw = api_key_create(user, name="laptop")

    listing = admin_web.get(reverse("admin:accounts_apikey_changelist"))
    page = admin_web.get(reverse("admin:accounts_apikey_change", args=[key.pk]))

    for response in (listing, page):
        assert key.prefix.encode() in response.content
        assert key.key_hash.encode() not in response.content
        assert raw.encode() not in response.content


def test_api_key_admin_revoke_action(admin_web, user, other_user):
    key, _ = api_key_create(user, name="leaked")
    bob_key, _ = api_key_create(other_user, name="fine")

    response = admin_web.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [str(key.pk)]},
    )

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=bob_key.pk).revoked_at is None


def test_refresh_tokens_are_not_editable(admin_web, user):
    login_issue_tokens(user)
    token = RefreshToken.objects.get(user=user)

    page = admin_web.get(reverse("admin:accounts_refreshtoken_change", args=[token.pk]))
    add = admin_web.get(reverse("admin:accounts_refreshtoken_add"))

    assert page.status_code == 200
    assert token.token_hash.encode() not in page.content
    assert add.status_code == 403
