"""API: register, login, refresh rotation and reuse detection, logout, token errors."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts import tokens
from accounts.models import AuditLog, RefreshToken, Role, User
from accounts.tests.factories import PASSWORD

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a-much-better-Secret-42"


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters and the revoked-family denylist live in the cache.
    cache.clear()
    yield
    cache.clear()


def login(client, username: str, password: str = PASSWORD):
    return client.post(LOGIN, {"username": username, "password": password}, format="json")


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def tokens_for(client, username: str) -> dict:
    response = login(client, username)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def all_audit_text() -> str:
    return json.dumps(list(AuditLog.objects.values("detail", "action", "api_key_prefix")))


# --- register ---------------------------------------------------------------------------------


def test_register_creates_a_user_with_role_user(api_client, db):
    response = api_client.post(
        REGISTER,
        {
            "username": "carol",
            "email": "Carol@Example.COM",
            "password": NEW_PASSWORD,
            "display_name": "Carol",
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["code"] == 0
    assert sorted(body["data"]) == [
        "avatar_url",
        "created_at",
        "display_name",
        "email",
        "id",
        "language",
        "last_login",
        "role",
        "theme",
        "username",
    ]
    assert body["data"]["role"] == "user"
    assert body["data"]["email"] == "Carol@example.com"
    carol = User.objects.get(username="carol")
    assert carol.check_password(NEW_PASSWORD)
    assert (carol.is_staff, carol.is_superuser) == (False, False)
    row = AuditLog.objects.get(action="user.register")
    assert (row.actor, row.object_id, row.detail) == (carol, str(carol.pk), {})


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "ALICE", "email": "new@example.com"}, "username"),
        ({"username": "carol", "email": "ALICE@example.com"}, "email"),
    ],
)
def test_register_duplicate_is_conflict_naming_the_field(api_client, user, payload, field):
    response = api_client.post(REGISTER, {**payload, "password": NEW_PASSWORD}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == 40901
    assert list(body["details"]) == [field]
    assert not User.objects.filter(email="new@example.com").exists()
    assert not User.objects.filter(username="carol").exists()


def test_register_runs_the_password_validators(api_client, db):
    response = api_client.post(
        REGISTER, {"username": "carol", "email": "c@example.com", "password": "123"}, format="json"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 40002
    assert list(body["details"]) == ["password"]
    assert len(body["details"]["password"]) >= 2
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"is_superuser": True}, "is_superuser"),
        ({"role": "admin"}, "role"),
        ({"username": "c" * 151}, "username"),
        ({"username": ["carol"]}, "username"),
        ({"username": "carol@evil"}, "username"),
        ({"username": "bad name!"}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"display_name": "d" * 101}, "display_name"),
        ({"password": "p" * 129}, "password"),
        ({"password": None}, "password"),
    ],
)
def test_register_rejects_bad_input(api_client, db, change, field):
    payload = {"username": "carol", "email": "c@example.com", "password": NEW_PASSWORD, **change}

    response = api_client.post(REGISTER, payload, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 40002
    assert field in body["details"]
    assert not User.objects.filter(email="c@example.com").exists()


def test_malformed_json_is_40001(api_client, db):
    response = api_client.post(REGISTER, '{"username": "carol",', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == 40001


def test_non_object_body_is_a_validation_error(api_client, db):
    response = api_client.post(LOGIN, "[1, 2]", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == 40002


# --- login ------------------------------------------------------------------------------------


@pytest.mark.parametrize("login_name", ["alice", "ALICE", "alice@example.com"])
def test_login_with_username_or_email_returns_a_token_pair(api_client, user, login_name):
    response = login(api_client, login_name)

    assert response.status_code == 200
    data = response.json()["data"]
    assert sorted(data) == ["access_token", "expires_in", "refresh_token", "token_type", "user"]
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 1800
    assert data["user"]["username"] == "alice"
    assert RefreshToken.objects.filter(user=user).count() == 1
    user.refresh_from_db()
    assert user.last_login is not None


def test_failed_logins_look_identical_whatever_the_cause(api_client, user, other_user):
    other_user.is_active = False
    other_user.save(update_fields=["is_active"])

    responses = [
        login(api_client, "alice", "wrong-password"),
        login(api_client, "nobody-by-that-name"),
        login(api_client, "bob"),
    ]

    assert [r.status_code for r in responses] == [401, 401, 401]
    bodies = [r.content for r in responses]
    assert bodies[0] == bodies[1] == bodies[2]
    assert responses[0].json() == {
        "code": 40103,
        "message": "Invalid username or password.",
        "details": None,
    }


def test_failed_login_is_audited_without_the_password(api_client, user):
    login(api_client, "alice", "wrong-password-xyz")

    row = AuditLog.objects.get(action="auth.login_failed")
    assert row.actor is None
    assert row.detail == {"login": "alice"}
    assert "wrong-password-xyz" not in all_audit_text()


@pytest.mark.usefixtures("throttle_clock")
def test_login_is_throttled_after_repeated_failures(api_client, user, other_user, settings):
    settings.LOGIN_THROTTLE_RATE = "3/min"
    failures = [login(api_client, "alice", "wrong").status_code for _ in range(3)]

    blocked = login(api_client, "alice")  # even the right password waits now

    assert failures == [401, 401, 401]
    assert blocked.status_code == 429
    body = blocked.json()
    assert body["code"] == 42901
    assert 1 <= body["details"]["retry_after"] <= 60
    assert blocked["Retry-After"] == str(body["details"]["retry_after"])
    assert login(api_client, "bob").status_code == 200


def test_successful_logins_are_not_throttled(api_client, user, settings):
    settings.LOGIN_THROTTLE_RATE = "2/min"

    statuses = [login(api_client, "alice").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 200]


@pytest.mark.usefixtures("throttle_clock")
def test_one_address_guessing_many_names_is_throttled(api_client, db, settings):
    settings.LOGIN_THROTTLE_RATE = "1/min"  # five failures per address and minute overall

    statuses = [login(api_client, f"name{n}", "wrong").status_code for n in range(6)]

    assert statuses == [401, 401, 401, 401, 401, 429]


# --- access tokens ----------------------------------------------------------------------------


def test_access_token_authenticates_its_own_user(api_client, user, other_user):
    alice = tokens_for(api_client, "alice")
    bob = tokens_for(api_client, "bob")

    me_alice = api_client.get(ME, **bearer(alice["access_token"]))
    me_bob = api_client.get(ME, **bearer(bob["access_token"]))

    assert me_alice.json()["data"]["username"] == "alice"
    assert me_bob.json()["data"]["username"] == "bob"


def test_no_credentials_is_40101_with_a_bearer_challenge(api_client, db):
    response = api_client.get(ME)

    assert response.status_code == 401
    assert response.json()["code"] == 40101
    assert response["WWW-Authenticate"] == "Bearer"


def test_expired_access_token_is_rejected(api_client, user):
    token = tokens.issue_access_token(user, family="f", now=timezone.now() - timedelta(minutes=31))

    response = api_client.get(ME, **bearer(token))

    assert response.status_code == 401
    assert response.json() == {"code": 40102, "message": "Token expired.", "details": None}


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."],
)
def test_garbage_bearer_token_is_rejected(api_client, db, token):
    response = api_client.get(ME, **bearer(token))

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token."


def test_malformed_authorization_header_is_rejected(api_client, db):
    response = api_client.get(ME, HTTP_AUTHORIZATION="Bearer two parts")

    assert response.status_code == 401
    assert response.json()["code"] == 40102


def test_access_token_of_a_deactivated_user_is_rejected(api_client, user):
    access = tokens_for(api_client, "alice")["access_token"]
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = api_client.get(ME, **bearer(access))

    assert response.status_code == 401
    assert response.json()["message"] == "User inactive or deleted."


# --- refresh and logout -----------------------------------------------------------------------


def test_refresh_rotates_and_the_old_token_stops_working(api_client, user):
    first = tokens_for(api_client, "alice")

    response = api_client.post(REFRESH, {"refresh_token": first["refresh_token"]}, format="json")

    assert response.status_code == 200
    second = response.json()["data"]
    assert second["refresh_token"] != first["refresh_token"]
    assert api_client.get(ME, **bearer(second["access_token"])).status_code == 200
    rows = list(RefreshToken.objects.filter(user=user).order_by("id"))
    assert len(rows) == 2
    assert rows[0].family == rows[1].family
    assert rows[0].rotated_at is not None
    assert rows[1].rotated_at is None


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(api_client, user, other_user):
    first = tokens_for(api_client, "alice")
    other_session = tokens_for(api_client, "alice")
    bob = tokens_for(api_client, "bob")
    second = api_client.post(
        REFRESH, {"refresh_token": first["refresh_token"]}, format="json"
    ).json()["data"]

    replay = api_client.post(REFRESH, {"refresh_token": first["refresh_token"]}, format="json")

    assert replay.status_code == 401
    assert replay.json()["code"] == 40102
    assert replay.json()["message"] == "Refresh token reuse detected; please log in again."
    after = api_client.post(REFRESH, {"refresh_token": second["refresh_token"]}, format="json")
    assert after.json()["message"] == "Refresh token revoked."
    assert api_client.get(ME, **bearer(second["access_token"])).status_code == 401
    # Other sessions of the same user and of other users are untouched.
    assert api_client.get(ME, **bearer(other_session["access_token"])).status_code == 200
    assert api_client.get(ME, **bearer(bob["access_token"])).status_code == 200
    assert AuditLog.objects.filter(action="auth.refresh_reuse", actor=user).count() == 1


def test_refresh_with_an_unknown_token_is_rejected(api_client, db):
    response = api_client.post(REFRESH, {"refresh_token": "nope"}, format="json")

    assert response.status_code == 401
    assert response.json() == {"code": 40102, "message": "Invalid refresh token.", "details": None}


def test_expired_refresh_token_is_rejected(api_client, user):
    pair = tokens_for(api_client, "alice")
    RefreshToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api_client.post(REFRESH, {"refresh_token": pair["refresh_token"]}, format="json")

    assert response.status_code == 401
    assert response.json()["message"] == "Refresh token expired."


def test_refresh_for_a_deactivated_user_is_rejected(api_client, user):
    pair = tokens_for(api_client, "alice")
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = api_client.post(REFRESH, {"refresh_token": pair["refresh_token"]}, format="json")

    assert response.status_code == 401
    assert response.json()["message"] == "User inactive or deleted."


def test_logout_revokes_the_refresh_token_and_its_access_tokens(api_client, user, other_user):
    alice = tokens_for(api_client, "alice")
    bob = tokens_for(api_client, "bob")

    response = api_client.post(LOGOUT, {"refresh_token": alice["refresh_token"]}, format="json")

    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "success", "data": None}
    refreshed = api_client.post(REFRESH, {"refresh_token": alice["refresh_token"]}, format="json")
    assert refreshed.json()["message"] == "Refresh token revoked."
    assert api_client.get(ME, **bearer(alice["access_token"])).json()["message"] == (
        "Token revoked."
    )
    assert api_client.get(ME, **bearer(bob["access_token"])).status_code == 200
    assert AuditLog.objects.filter(action="auth.logout", actor=user).count() == 1


def test_logout_with_an_unknown_token_is_rejected(api_client, db):
    response = api_client.post(LOGOUT, {"refresh_token": "nope"}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == 40102


@pytest.mark.parametrize("path", [REFRESH, LOGOUT])
@pytest.mark.parametrize(
    "payload", [{}, {"refresh_token": "x", "extra": 1}, {"refresh_token": "x" * 201}]
)
def test_refresh_and_logout_validate_input(api_client, db, path, payload):
    response = api_client.post(path, payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == 40002


def test_audit_rows_of_a_token_session_hold_no_secrets(api_client, user):
    pair = tokens_for(api_client, "alice")
    rotated = api_client.post(
        REFRESH, {"refresh_token": pair["refresh_token"]}, format="json"
    ).json()["data"]
    api_client.post(LOGOUT, {"refresh_token": rotated["refresh_token"]}, format="json")

    text = all_audit_text()

    assert list(
        AuditLog.objects.filter(actor=user)
        .order_by("id")
        .values_list("action", "via", "actor__username")
    ) == [
        ("auth.login", "api", "alice"),
        ("auth.refresh", "api", "alice"),
        ("auth.logout", "api", "alice"),
    ]
    for secret in (PASSWORD, pair["refresh_token"], pair["access_token"], rotated["refresh_token"]):
        assert secret not in text


def test_registered_user_can_log_in_right_away(api_client, db):
    api_client.post(
        REGISTER,
        {"username": "carol", "email": "carol@example.com", "password": NEW_PASSWORD},
        format="json",
    )

    response = login(api_client, "carol@example.com", NEW_PASSWORD)

    assert response.status_code == 200
    assert response.json()["data"]["user"]["role"] == Role.USER


def test_login_works_for_every_role(api_client, developer, reviewer, admin_user):
    roles = [
        login(api_client, name).json()["data"]["user"]["role"] for name in ("dora", "rex", "ada")
    ]

    assert roles == ["developer", "reviewer", "admin"]
