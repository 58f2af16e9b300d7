"""API: the caller's profile, password and personal API keys; two users every time."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditLog, RefreshToken
from accounts.services import api_key_create, login_issue_tokens
from accounts.tests.factories import PASSWORD

ME = "/api/v1/users/me"
PASSWORD_URL = "/api/v1/users/me/password"
KEYS = "/api/v1/users/me/api-keys"
NEW_PASSWORD = "a-much-better-Secret-42"
CSRF = "abcdefghijklmnopqrstuvwxyzABCDEF"  # a 32-character CSRF secret


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def key_url(key_id) -> str:
    return f"{KEYS}/{key_id}"


# --- users/me ---------------------------------------------------------------------------------


def test_me_returns_the_callers_profile_without_secrets(auth_client, user):
    response = auth_client.get(ME)

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == str(user.pk)
    assert data["username"] == "alice"
    assert "password" not in data
    assert "is_superuser" not in data


@pytest.mark.parametrize("method", ["put", "patch"])
def test_me_update_changes_only_the_caller(auth_client, user, other_user, method):
    payload = {
        "display_name": "Alice A.",
        "avatar_url": "https://cdn.example.com/a.png",
        "theme": "dark",
        "language": "zh-hans",
    }

    response = getattr(auth_client, method)(ME, payload, format="json")

    assert response.status_code == 200
    assert {k: response.json()["data"][k] for k in payload} == payload
    user.refresh_from_db()
    other_user.refresh_from_db()
    assert (user.display_name, user.theme, user.language) == ("Alice A.", "dark", "zh-hans")
    assert (other_user.display_name, other_user.theme) == ("Bob", "system")
    row = AuditLog.objects.get(action="user.update")
    assert row.detail == {"fields": ["avatar_url", "display_name", "language", "theme"]}


def test_theme_toggle_with_session_needs_the_csrf_token(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = CSRF

    refused = client.patch(ME, {"theme": "dark"}, format="json")
    accepted = client.patch(ME, {"theme": "dark"}, format="json", HTTP_X_CSRFTOKEN=CSRF)

    assert refused.status_code == 403
    assert refused.json()["code"] == 40301
    assert accepted.status_code == 200
    assert accepted.json()["data"]["theme"] == "dark"
    assert AuditLog.objects.get(action="user.update").via == "web"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"theme": "purple"}, "theme"),
        ({"language": "fr"}, "language"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"display_name": {"a": 1}}, "display_name"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"avatar_url": "https://e.com/" + "a" * 500}, "avatar_url"),
        ({"email": "nope"}, "email"),
        ({"role": "admin"}, "role"),
        ({"is_staff": True}, "is_staff"),
        ({"password": "x"}, "password"),
    ],
)
def test_me_update_rejects_bad_input(auth_client, user, payload, field):
    response = auth_client.patch(ME, payload, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 40002
    assert list(body["details"]) == [field]
    user.refresh_from_db()
    assert (user.role, user.theme, user.is_staff) == ("user", "system", False)


def test_me_email_taken_by_another_user_is_conflict(auth_client, user, other_user):
    response = auth_client.patch(ME, {"email": "BOB@example.com"}, format="json")

    assert response.status_code == 409
    assert response.json()["details"] == {"email": ["An account with this email already exists."]}
    user.refresh_from_db()
    assert user.email == "alice@example.com"


def test_me_can_keep_its_own_email(auth_client, user):
    response = auth_client.patch(ME, {"email": "alice@example.com"}, format="json")

    assert response.status_code == 200
    assert not AuditLog.objects.filter(action="user.update").exists()


def test_me_malformed_json_is_40001(auth_client, user):
    response = auth_client.patch(ME, "{theme: dark}", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == 40001


# --- password ---------------------------------------------------------------------------------


def test_password_change_revokes_the_users_tokens_only(api_client, user, other_user):
    alice = login_issue_tokens(user)
    bob = login_issue_tokens(other_user)

    response = api_client.put(
        PASSWORD_URL,
        {"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        format="json",
        **bearer(alice["access_token"]),
    )

    assert response.status_code == 200
    assert response.json()["data"] is None
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not RefreshToken.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert RefreshToken.objects.filter(user=other_user, revoked_at__isnull=True).count() == 1
    assert api_client.get(ME, **bearer(alice["access_token"])).status_code == 401
    assert api_client.get(ME, **bearer(bob["access_token"])).status_code == 200
    row = AuditLog.objects.get(action="user.password_change")
    assert row.via == "jwt"
    assert PASSWORD not in json.dumps(row.detail)
    assert NEW_PASSWORD not in json.dumps(row.detail)


def test_password_change_keeps_the_session_that_made_it(user):
    client = APIClient()
    client.force_login(user)

    client.put(
        PASSWORD_URL, {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )

    assert client.get(ME).status_code == 200


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"old_password": "wrong", "new_password": NEW_PASSWORD}, "old_password"),
        ({"old_password": PASSWORD, "new_password": "123"}, "new_password"),
        ({"old_password": PASSWORD, "new_password": "alice"}, "new_password"),
        ({"old_password": PASSWORD}, "new_password"),
        ({"old_password": PASSWORD, "new_password": NEW_PASSWORD, "x": 1}, "x"),
        ({"old_password": PASSWORD, "new_password": "n" * 129}, "new_password"),
    ],
)
def test_password_change_rejects_bad_input(auth_client, user, payload, field):
    response = auth_client.put(PASSWORD_URL, payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == 40002
    assert field in response.json()["details"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


# --- API keys ---------------------------------------------------------------------------------


def test_api_key_is_shown_once_and_stored_hashed(auth_client, user):
    response = auth_client.post(KEYS, {"name": "laptop"}, format="json")

    assert response.status_code == 201
    data = response.json()["data"]
    assert sorted(data) == [
        "created_at",
        "expires_at",
        "id",
        "key",
        "last_used_at",
        "name",
        "prefix",
    ]
    assert data["key"].startswith("sk-")
    assert len(data["key"]) > 40
    assert data["prefix"] == data["key"][:11]
    stored = ApiKey.objects.get(pk=data["id"])
    assert stored.key_hash != data["key"]
    assert data["key"] not in json.dumps(list(ApiKey.objects.values()), default=str)
    listed = auth_client.get(KEYS).json()["data"]
    assert listed["total"] == 1
    assert sorted(listed["items"][0]) == [
        "created_at",
        "expires_at",
        "id",
        "last_used_at",
        "name",
        "prefix",
    ]
    row = AuditLog.objects.get(action="api_key.create")
    assert row.detail == {"name": "laptop", "prefix": data["prefix"]}
    assert data["key"] not in json.dumps(row.detail)


def test_api_key_list_shows_only_the_callers_active_keys(auth_client, user, other_user):
    mine, _ = api_key_create(user, name="mine")
    revoked, _ = api_key_create(user, name="old")
    api_key_create(other_user, name="bobs")
    revoked.revoked_at = timezone.now()
    revoked.save(update_fields=["revoked_at"])

    items = auth_client.get(KEYS).json()["data"]["items"]

    assert [item["id"] for item in items] == [str(mine.pk)]


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_api_key_authenticates_through_either_header(api_client, user, other_user, header):
    _, alice_key = api_key_create(user, name="a")
    _, bob_key = api_key_create(other_user, name="b")
    prefix = "Bearer " if header == "HTTP_AUTHORIZATION" else ""

    alice = api_client.get(ME, **{header: prefix + alice_key})
    bob = api_client.get(ME, **{header: prefix + bob_key})

    assert alice.json()["data"]["username"] == "alice"
    assert bob.json()["data"]["username"] == "bob"


def test_writes_with_an_api_key_are_audited_with_its_prefix(api_client, user):
    key, raw = api_key_create(user, name="ci")

    api_client.patch(ME, {"theme": "light"}, format="json", HTTP_X_API_KEY=raw)

    row = AuditLog.objects.get(action="user.update")
    assert (row.via, row.api_key_prefix, row.actor) == ("api_key", key.prefix, user)


def test_unknown_api_key_is_rejected(api_client, db):
    response = api_client.get(ME, HTTP_X_API_KEY="sk-definitely-not-a-key")

    assert response.status_code == 401
    assert response.json() == {"code": 40102, "message": "Invalid API key.", "details": None}


def test_expired_api_key_is_rejected(api_client, user):
    key, raw = api_key_create(user, name="short")
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api_client.get(ME, **bearer(raw))

    assert response.status_code == 401
    assert response.json()["message"] == "API key expired."


def test_revoked_api_key_stops_working(api_client, user, other_user):
    key, raw = api_key_create(user, name="a")
    _, bob_raw = api_key_create(other_user, name="b")

    response = api_client.delete(key_url(key.pk), **bearer(raw))

    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "success", "data": None}
    after = api_client.get(ME, **bearer(raw))
    assert after.status_code == 401
    assert after.json()["message"] == "API key revoked."
    assert api_client.get(ME, **bearer(bob_raw)).status_code == 200
    assert AuditLog.objects.get(action="api_key.revoke").detail == {"prefix": key.prefix}


def test_another_users_api_key_is_not_found(api_client, user, other_user):
    key, raw = api_key_create(user, name="alice's")
    _, bob_raw = api_key_create(other_user, name="bob's")

    response = api_client.delete(key_url(key.pk), **bearer(bob_raw))

    assert response.status_code == 404
    assert response.json()["code"] == 40401
    assert api_client.get(ME, **bearer(raw)).status_code == 200


@pytest.mark.parametrize("key_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_api_key_id_is_not_found(auth_client, user, key_id):
    response = auth_client.delete(key_url(key_id))

    assert response.status_code == 404
    assert response.json()["code"] == 40401


def test_revoking_twice_is_not_found(auth_client, user):
    key, _ = api_key_create(user, name="a")
    auth_client.delete(key_url(key.pk))

    response = auth_client.delete(key_url(key.pk))

    assert response.status_code == 404


def test_api_key_with_expiry(auth_client, user):
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)

    response = auth_client.post(
        KEYS, {"name": "month", "expires_at": expires.isoformat()}, format="json"
    )

    assert response.status_code == 201
    assert ApiKey.objects.get().expires_at == expires


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "k", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "k", "key": "sk-mine"}, "key"),
    ],
)
def test_api_key_create_rejects_bad_input(auth_client, user, payload, field):
    response = auth_client.post(KEYS, payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == 40002
    assert field in response.json()["details"]
    assert not ApiKey.objects.exists()


def test_api_keys_need_authentication(api_client, db):
    assert api_client.get(KEYS).json()["code"] == 40101
    assert api_client.post(KEYS, {"name": "x"}, format="json").json()["code"] == 40101
