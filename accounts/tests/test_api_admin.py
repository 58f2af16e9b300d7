"""API: admin user management (role admin only)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import AuditLog, PermissionOverride, RefreshToken, Role, User
from accounts.services import login_issue_tokens
from accounts.tests.factories import UserFactory

USERS = "/api/v1/admin/users"
NEW_PASSWORD = "a-much-better-Secret-42"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin_client(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def detail(user) -> str:
    return f"{USERS}/{user.pk}"


def people(response) -> list[str]:
    """Usernames in a list response, leaving out system accounts other apps create on
    migrate (they have no usable password)."""
    system = set(User.objects.filter(password__startswith="!").values_list("username", flat=True))
    return [i["username"] for i in response.json()["data"]["items"] if i["username"] not in system]


@pytest.mark.parametrize("role_fixture", ["user", "developer", "reviewer"])
@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "list", None),
        ("post", "list", {"username": "x", "email": "x@example.com", "password": NEW_PASSWORD}),
        ("get", "detail", None),
        ("put", "detail", {"role": "admin"}),
        ("delete", "detail", None),
    ],
)
def test_admin_endpoints_refuse_non_admins(
    request, other_user, role_fixture, method, path, payload
):
    actor = request.getfixturevalue(role_fixture)
    url = USERS if path == "list" else detail(other_user)

    response = getattr(client_for(actor), method)(url, payload, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == 40301
    other_user.refresh_from_db()
    assert other_user.role == Role.USER
    assert User.objects.filter(username="x").count() == 0


def test_admin_endpoints_need_authentication(api_client, db):
    response = api_client.get(USERS)

    assert response.status_code == 401
    assert response.json()["code"] == 40101


def test_admin_user_list_is_paginated_with_overrides_in_few_queries(
    admin_client, admin_user, user, other_user, django_assert_num_queries
):
    for n in range(5):
        UserFactory(username=f"zed{n}")
    PermissionOverride.objects.create(
        user=user,
        permission=_perm("accounts", "view_auditlog"),
        effect=PermissionOverride.Effect.GRANT,
    )

    # count, page of users, one prefetch for all their overrides
    with django_assert_num_queries(3):
        response = admin_client.get(USERS, {"page_size": 4})

    assert response.status_code == 200
    data = response.json()["data"]
    everyone = list(User.objects.order_by("username").values_list("username", flat=True))
    assert (data["total"], data["page"], data["page_size"]) == (len(everyone), 1, 4)
    assert data["pages"] == -(-len(everyone) // 4)
    assert [item["username"] for item in data["items"]] == everyone[:4]
    alice = next(item for item in data["items"] if item["username"] == "alice")
    assert (alice["grants"], alice["revokes"]) == (["accounts.view_auditlog"], [])
    assert "password" not in alice


def test_admin_user_list_filters(admin_client, admin_user, user, other_user, developer):
    other_user.is_active = False
    other_user.save(update_fields=["is_active"])

    def names(params):
        return people(admin_client.get(USERS, params))

    assert names({"role": "developer"}) == ["dora"]
    assert names({"is_active": "false"}) == ["bob"]
    assert names({"q": "ALI"}) == ["alice"]
    assert names({"q": "bob@example"}) == ["bob"]
    assert names({"role": "admin", "is_active": "true"}) == ["ada"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["ada", "alice", "bob"]),
        ({"sort_by": "username", "sort_order": "desc"}, ["bob", "alice", "ada"]),
        ({"sort_by": "created", "sort_order": "asc"}, ["ada", "alice", "bob"]),
        ({"sort_by": "created", "sort_order": "desc"}, ["bob", "alice", "ada"]),
    ],
)
def test_admin_user_list_sorting(admin_client, admin_user, user, other_user, params, expected):
    response = admin_client.get(USERS, params)

    assert people(response) == expected


def test_admin_user_list_sorts_by_last_login(admin_client, admin_user, user, other_user):
    login_issue_tokens(admin_user)
    login_issue_tokens(other_user)
    login_issue_tokens(user)

    response = admin_client.get(USERS, {"sort_by": "last_login", "sort_order": "desc"})

    assert people(response) == ["alice", "bob", "ada"]


@pytest.mark.parametrize(
    "params", [{"sort_by": "password"}, {"sort_order": "sideways"}, {"role": "emperor"}]
)
def test_admin_user_list_rejects_bad_parameters(admin_client, admin_user, params):
    response = admin_client.get(USERS, params)

    assert response.status_code == 400
    assert response.json()["code"] in {40002, 40003}


def test_admin_creates_a_reviewer_with_staff_flag(admin_client, admin_user):
    response = admin_client.post(
        USERS,
        {
            "username": "rita",
            "email": "rita@example.com",
            "password": NEW_PASSWORD,
            "role": "reviewer",
        },
        format="json",
    )

    assert response.status_code == 201
    data = response.json()["data"]
    assert (data["role"], data["is_staff"], data["is_superuser"], data["is_active"]) == (
        "reviewer",
        True,
        False,
        True,
    )
    rita = User.objects.get(username="rita")
    assert rita.check_password(NEW_PASSWORD)
    row = AuditLog.objects.get(action="user.create")
    assert (row.actor, row.object_id) == (admin_user, str(rita.pk))
    assert row.detail == {"username": "rita", "role": "reviewer", "is_active": True}


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"username": "ALICE", "email": "n@example.com"}, 409, "username"),
        ({"username": "n", "email": "alice@EXAMPLE.com"}, 409, "email"),
        ({"username": "n", "email": "n@example.com", "role": "god"}, 400, "role"),
        ({"username": "n", "email": "n@example.com", "is_staff": True}, 400, "is_staff"),
        ({"username": "n", "email": "n@example.com", "password": "1"}, 400, "password"),
    ],
)
def test_admin_create_rejects_bad_input(admin_client, admin_user, user, payload, status, field):
    response = admin_client.post(USERS, {"password": NEW_PASSWORD, **payload}, format="json")

    assert response.status_code == status
    assert field in response.json()["details"]
    assert not User.objects.filter(username__iexact="n").exists()
    assert not User.objects.filter(email__iexact="n@example.com").exists()


def test_admin_gets_one_user(admin_client, admin_user, user):
    response = admin_client.get(detail(user))

    assert response.status_code == 200
    assert response.json()["data"]["username"] == "alice"


@pytest.mark.parametrize("user_id", ["nope", "00000000-0000-0000-0000-000000000000"])
def test_admin_unknown_user_is_not_found(admin_client, admin_user, user_id):
    response = admin_client.get(f"{USERS}/{user_id}")

    assert response.status_code == 404
    assert response.json()["code"] == 40401


@pytest.mark.parametrize(
    ("role", "flags"),
    [
        ("admin", (True, True)),
        ("reviewer", (True, False)),
        ("user", (False, False)),
    ],
)
def test_admin_sets_role_and_flags_follow(admin_client, admin_user, developer, role, flags):
    response = admin_client.put(detail(developer), {"role": role}, format="json")

    assert response.status_code == 200
    developer.refresh_from_db()
    assert (developer.role, developer.is_staff, developer.is_superuser) == (role, *flags)
    row = AuditLog.objects.get(action="user.set_role")
    assert (row.actor, row.detail) == (admin_user, {"from": "developer", "to": role})


def test_admin_grants_and_revokes_permissions(admin_client, admin_user, user, other_user):
    response = admin_client.put(
        detail(user),
        {"grants": ["accounts.view_auditlog"], "revokes": ["accounts.view_apikey"]},
        format="json",
    )

    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["grants"], data["revokes"]) == (
        ["accounts.view_auditlog"],
        ["accounts.view_apikey"],
    )
    fresh = User.objects.get(pk=user.pk)
    assert fresh.has_perm("accounts.view_auditlog")
    assert not User.objects.get(pk=other_user.pk).has_perm("accounts.view_auditlog")
    row = AuditLog.objects.get(action="user.update")
    assert row.detail == {
        "fields": [],
        "grants": ["accounts.view_auditlog"],
        "revokes": ["accounts.view_apikey"],
    }


def test_admin_replacing_grants_moves_a_permission(admin_client, admin_user, user):
    admin_client.put(detail(user), {"revokes": ["accounts.view_auditlog"]}, format="json")

    response = admin_client.put(
        detail(user), {"grants": ["accounts.view_auditlog"], "revokes": []}, format="json"
    )

    assert (response.json()["data"]["grants"], response.json()["data"]["revokes"]) == (
        ["accounts.view_auditlog"],
        [],
    )
    assert PermissionOverride.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"grants": ["accounts.no_such_perm"]}, "grants"),
        ({"grants": ["nodot"]}, "grants"),
        ({"grants": "accounts.view_auditlog"}, "grants"),
        (
            {"grants": ["accounts.view_auditlog"], "revokes": ["accounts.view_auditlog"]},
            "revokes",
        ),
        ({"display_name": "d" * 101}, "display_name"),
        ({"is_active": "sometimes"}, "is_active"),
        ({"password": "x"}, "password"),
    ],
)
def test_admin_update_rejects_bad_input(admin_client, admin_user, user, payload, field):
    response = admin_client.put(detail(user), payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == 40002
    assert field in response.json()["details"]
    assert not PermissionOverride.objects.exists()


def test_admin_deactivating_a_user_ends_their_sessions(admin_client, admin_user, user, other_user):
    alice = login_issue_tokens(user)
    login_issue_tokens(other_user)

    response = admin_client.put(detail(user), {"is_active": False}, format="json")

    assert response.status_code == 200
    assert response.json()["data"]["is_active"] is False
    assert not RefreshToken.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert RefreshToken.objects.filter(user=other_user, revoked_at__isnull=True).count() == 1
    me = APIClient().get("/api/v1/users/me", HTTP_AUTHORIZATION=f"Bearer {alice['access_token']}")
    assert me.status_code == 401


def test_admin_cannot_deactivate_or_delete_itself(admin_client, admin_user, user):
    deactivate = admin_client.put(detail(admin_user), {"is_active": False}, format="json")
    delete = admin_client.delete(detail(admin_user))

    assert deactivate.status_code == 400
    assert delete.status_code == 400
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_last_admin_keeps_the_admin_role(admin_client, admin_user):
    response = admin_client.put(detail(admin_user), {"role": "user"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == 40901
    admin_user.refresh_from_db()
    assert (admin_user.role, admin_user.is_superuser) == ("admin", True)


def test_an_admin_can_step_down_when_another_admin_exists(admin_client, admin_user):
    UserFactory(username="ada2", role=Role.ADMIN)

    response = admin_client.put(detail(admin_user), {"role": "developer"}, format="json")

    assert response.status_code == 200
    assert response.json()["data"]["role"] == "developer"


def test_admin_deletes_a_user(admin_client, admin_user, user, other_user):
    response = admin_client.delete(detail(user))

    assert response.status_code == 200
    assert response.json()["data"] is None
    assert not User.objects.filter(pk=user.pk).exists()
    assert User.objects.filter(pk=other_user.pk).exists()
    row = AuditLog.objects.get(action="user.delete")
    assert (row.actor, row.object_id, row.detail) == (
        admin_user,
        str(user.pk),
        {"username": "alice"},
    )
    assert admin_client.get(detail(user)).status_code == 404


def _perm(app_label: str, codename: str):
    from django.contrib.auth.models import Permission

    return Permission.objects.get(content_type__app_label=app_label, codename=codename)
