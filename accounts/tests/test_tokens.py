"""accounts.tokens: JWT claims, API key resolution, last_used_at, user_for_token."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiKey, User
from accounts.services import api_key_create, login_issue_tokens, token_logout


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def _sign(claims: dict) -> str:
    return jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")


def test_access_token_claims(user):
    family = uuid.uuid4()

    raw = tokens.issue_access_token(user, family=family)

    claims = jwt.decode(raw, settings.SECRET_KEY, algorithms=["HS256"])
    assert sorted(claims) == ["exp", "fam", "iat", "jti", "pwd", "sub", "type"]
    assert (claims["sub"], claims["type"], claims["fam"]) == (str(user.pk), "access", str(family))
    assert claims["exp"] - claims["iat"] == 30 * 60
    assert jwt.get_unverified_header(raw)["alg"] == "HS256"


def test_each_access_token_has_its_own_jti(user):
    first = jwt.decode(
        tokens.issue_access_token(user, family="f"), options={"verify_signature": False}
    )
    second = jwt.decode(
        tokens.issue_access_token(user, family="f"), options={"verify_signature": False}
    )

    assert first["jti"] != second["jti"]


def test_user_for_token_accepts_jwt_and_api_keys_of_each_user(user, other_user):
    alice_jwt = login_issue_tokens(user)["access_token"]
    _, bob_key = api_key_create(other_user, name="ws")

    assert tokens.user_for_token(alice_jwt) == user
    assert tokens.user_for_token(bob_key) == other_user


@pytest.mark.parametrize("token", ["", "   ", "garbage", "sk-unknown", "Bearer x"])
def test_user_for_token_returns_none_for_unusable_tokens(db, token):
    assert tokens.user_for_token(token) is None


def test_user_for_token_returns_none_for_inactive_users(user, other_user):
    alice_jwt = login_issue_tokens(user)["access_token"]
    _, bob_key = api_key_create(other_user, name="ws")
    User.objects.update(is_active=False)

    assert tokens.user_for_token(alice_jwt) is None
    assert tokens.user_for_token(bob_key) is None


def test_user_for_token_returns_none_after_logout(user):
    pair = login_issue_tokens(user)

    token_logout(refresh_token=pair["refresh_token"])

    assert tokens.user_for_token(pair["access_token"]) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "refresh"}, "Invalid token."),
        ({"sub": "not-a-uuid"}, "Invalid token."),
        ({"sub": str(uuid.UUID(int=0))}, "User inactive or deleted."),
        ({"pwd": "0" * 16}, "Token revoked."),
        ({"exp": 1}, "Token expired."),
    ],
)
def test_decoding_rejects_tampered_claims(user, change, message):
    now = int(timezone.now().timestamp())
    claims = {
        "sub": str(user.pk),
        "type": "access",
        "jti": "j",
        "fam": "f",
        "pwd": tokens._password_fingerprint(user),
        "iat": now,
        "exp": now + 60,
        **change,
    }

    with pytest.raises(tokens.TokenError) as caught:
        tokens.resolve_access_token(_sign(claims))

    assert caught.value.message == message


def test_token_signed_with_another_key_is_rejected(user):
    now = int(timezone.now().timestamp())
    forged = jwt.encode(
        {"sub": str(user.pk), "type": "access", "jti": "j", "iat": now, "exp": now + 60},
        "another-secret-key-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )

    with pytest.raises(tokens.TokenError, match="Invalid token."):
        tokens.resolve_access_token(forged)


def test_unsigned_token_is_rejected(user):
    now = int(timezone.now().timestamp())
    unsigned = jwt.encode(
        {"sub": str(user.pk), "type": "access", "jti": "j", "iat": now, "exp": now + 60},
        None,
        algorithm="none",
    )

    with pytest.raises(tokens.TokenError, match="Invalid token."):
        tokens.resolve_access_token(unsigned)


def test_generated_api_keys_are_unique_and_prefixed():
    keys = {tokens.generate_api_key() for _ in range(50)}

    assert len(keys) == 50
    raw, prefix, key_hash = next(iter(keys))
    assert raw.startswith("sk-")
    assert prefix == raw[:11]
    assert key_hash == tokens.hash_secret(raw)
    assert len(key_hash) == 64


def test_api_key_use_is_recorded_at_most_once_a_minute(user, django_assert_num_queries):
    key, raw = api_key_create(user, name="k")

    with django_assert_num_queries(2):  # look-up + conditional UPDATE
        tokens.resolve_api_key(raw)
    with django_assert_num_queries(1):  # look-up only
        tokens.resolve_api_key(raw)

    key.refresh_from_db()
    assert key.last_used_at is not None


def test_stale_last_used_at_is_refreshed(user, other_user):
    key, raw = api_key_create(user, name="k")
    bob_key, _ = api_key_create(other_user, name="b")
    old = timezone.now() - timedelta(minutes=5)
    ApiKey.objects.update(last_used_at=old)

    tokens.resolve_api_key(raw)

    key.refresh_from_db()
    bob_key.refresh_from_db()
    assert key.last_used_at > old
    assert bob_key.last_used_at == old


def test_concurrent_touch_does_not_write_twice(user):
    key, _ = api_key_create(user, name="k")
    stale_copy = ApiKey.objects.get(pk=key.pk)
    tokens.touch_api_key(key)
    first = ApiKey.objects.get(pk=key.pk).last_used_at

    tokens.touch_api_key(stale_copy, now=first + timedelta(seconds=1))

    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
