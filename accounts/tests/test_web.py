"""Account web pages (SPEC §3, §4.2): register, login, logout, profile, password, API keys,
language and theme preferences."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import translation

from accounts import tokens
from accounts.models import ApiKey, AuditLog, User
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db

ONE_LOGIN_ERROR = "Please enter a correct username or email and password."
KEY_RE = re.compile(r'value="(sk-[^"]+)"')


@pytest.fixture(autouse=True)
def _clear_cache():
    # The login throttle counts failures in the cache; start every test from zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice_client(client, user):
    client.force_login(user)
    return client


def _login(client, login, password):
    return client.post(reverse("accounts:login"), {"username": login, "password": password})


# --- register -------------------------------------------------------------------------------


def test_register_creates_user_and_logs_in(client, password):
    response = client.post(
        reverse("accounts:register"),
        {
            "username": "carol",
            "email": "carol@example.com",
            "display_name": "Carol C",
            "password1": password,
            "password2": password,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    carol = User.objects.get(username="carol")
    assert (carol.email, carol.display_name, carol.role) == ("carol@example.com", "Carol C", "user")
    assert client.session["_auth_user_id"] == str(carol.pk)
    assert AuditLog.objects.filter(action="user.register", actor=carol).count() == 1


def test_register_redirects_to_safe_next_only(client, password):
    data = {"username": "carol", "email": "c@example.com", "password1": password}
    data["password2"] = password
    response = client.post(reverse("accounts:register") + "?next=https://evil.example/", data)
    assert response["Location"] == "/"


def test_register_with_taken_email_shows_error_on_email(client, user, password):
    response = client.post(
        reverse("accounts:register"),
        {
            "username": "carol",
            "email": "ALICE@example.com",
            "password1": password,
            "password2": password,
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "email": ["An account with this email already exists."]
    }
    assert not User.objects.filter(username="carol").exists()


def test_register_weak_password_shows_validator_error_on_password(client):
    response = client.post(
        reverse("accounts:register"),
        {"username": "carol", "email": "c@example.com", "password1": "123", "password2": "123"},
    )
    errors = response.context["form"].errors
    assert list(errors) == ["password1"]
    assert (
        "This password is too short. It must contain at least 8 characters." in errors["password1"]
    )


def test_register_mismatched_passwords(client, password):
    response = client.post(
        reverse("accounts:register"),
        {"username": "carol", "email": "c@example.com", "password1": password, "password2": "x"},
    )
    assert response.context["form"].errors == {"password2": ["The two passwords do not match."]}


# --- login / logout ---------------------------------------------------------------------------


@pytest.mark.parametrize("login", ["alice", "alice@example.com", "ALICE@Example.com"])
def test_login_with_username_or_email(client, user, password, login):
    response = _login(client, login, password)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    assert AuditLog.objects.filter(action="auth.login", actor=user, via="web").count() == 1


@pytest.mark.parametrize(
    ("login", "password_used"),
    [("alice", "wrong-password"), ("nobody", "correct-horse-battery-9"), ("bob", "x")],
)
def test_failed_login_shows_one_message_whatever_the_cause(
    client, user, other_user, login, password_used
):
    response = _login(client, login, password_used)
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert response.context["form"].non_field_errors() == [ONE_LOGIN_ERROR]
    assert AuditLog.objects.filter(action="auth.login_failed", detail__login=login).count() == 1


def test_inactive_user_gets_the_same_login_message(client, user, password):
    User.objects.filter(pk=user.pk).update(is_active=False)
    response = _login(client, "alice", password)
    assert response.context["form"].non_field_errors() == [ONE_LOGIN_ERROR]


@pytest.mark.usefixtures("throttle_clock")
def test_login_is_throttled_after_ten_failures(client, user, password):
    for _attempt in range(10):
        assert _login(client, "alice", "wrong-password").status_code == 200
    response = _login(client, "alice", password)
    assert response.status_code == 200
    (message,) = response.context["form"].non_field_errors()
    assert message.startswith("Too many failed login attempts; try again in ")
    assert "_auth_user_id" not in client.session


@pytest.mark.usefixtures("throttle_clock")
def test_login_throttle_is_per_login_name(client, user, other_user, password):
    for _attempt in range(10):
        _login(client, "alice", "wrong-password")
    assert _login(client, "bob", password).status_code == 302


def test_logout_needs_post(alice_client):
    assert alice_client.get(reverse("accounts:logout")).status_code == 405
    response = alice_client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in alice_client.session


# --- profile ---------------------------------------------------------------------------------


def test_profile_requires_login(client):
    response = client.get(reverse("accounts:profile"))
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/profile/"


def test_profile_saves_theme_and_language_and_next_page_is_chinese(alice_client, user):
    response = alice_client.post(
        reverse("accounts:profile"),
        {
            "display_name": "Alice A",
            "email": "alice@example.com",
            "avatar_url": "https://example.com/a.png",
            "theme": "dark",
            "language": "zh-hans",
        },
        follow=True,
    )
    user.refresh_from_db()
    assert (user.display_name, user.avatar_url, user.theme, user.language) == (
        "Alice A",
        "https://example.com/a.png",
        "dark",
        "zh-hans",
    )
    html = response.content.decode()
    assert '<html lang="zh-hans" dir="ltr" data-theme="dark">' in html
    assert "我的智能体" in html
    assert "个人资料已保存。" in html


def test_profile_save_sets_preference_cookies(alice_client):
    response = alice_client.post(
        reverse("accounts:profile"),
        {"display_name": "", "email": "alice@example.com", "theme": "light", "language": "zh-hant"},
    )
    assert response.cookies["theme"].value == "light"
    assert response.cookies["django_language"].value == "zh-hant"


def test_profile_email_taken_by_other_user_is_a_form_error(alice_client, user, other_user):
    response = alice_client.post(
        reverse("accounts:profile"),
        {"email": "bob@example.com", "theme": "system", "language": ""},
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "email": ["An account with this email already exists."]
    }
    user.refresh_from_db()
    assert user.email == "alice@example.com"


# --- password ------------------------------------------------------------------------------------


def test_password_change_keeps_session_and_new_password_works(alice_client, client, user, password):
    response = alice_client.post(
        reverse("accounts:password_change"),
        {
            "old_password": password,
            "new_password1": "a-new-long-passphrase-7",
            "new_password2": "a-new-long-passphrase-7",
        },
    )
    assert response.status_code == 302
    assert alice_client.get(reverse("accounts:profile")).status_code == 200
    alice_client.logout()
    assert _login(alice_client, "alice", "a-new-long-passphrase-7").status_code == 302


def test_password_change_with_wrong_old_password(alice_client, user, password):
    response = alice_client.post(
        reverse("accounts:password_change"),
        {
            "old_password": "not-it",
            "new_password1": "a-new-long-passphrase-7",
            "new_password2": "a-new-long-passphrase-7",
        },
    )
    assert response.context["form"].errors == {
        "old_password": ["Your old password was entered incorrectly."]
    }
    user.refresh_from_db()
    assert user.check_password(password)


# --- API keys -------------------------------------------------------------------------------------


def test_api_key_is_shown_once_and_listed_by_prefix(alice_client, user):
    response = alice_client.post(
        reverse("accounts:api_keys"), {"name": "laptop", "expires_in": "30"}
    )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    plaintext = KEY_RE.search(response.content.decode()).group(1)
    key = tokens.resolve_api_key(plaintext)
    assert (key.user, key.name, key.prefix) == (user, "laptop", plaintext[: len(key.prefix)])
    assert key.expires_at is not None

    listing = alice_client.get(reverse("accounts:api_keys")).content.decode()
    assert plaintext not in listing
    assert f"<code>{key.prefix}…</code>" in listing
    assert "laptop" in listing


def test_api_key_revoke_asks_then_revokes(alice_client, user):
    key, _raw = api_key_create(user, name="ci")
    url = reverse("accounts:api_key_revoke", args=[key.pk])
    confirm = alice_client.get(url)
    assert confirm.status_code == 200
    assert "Revoke the key “ci”" in confirm.content.decode()

    response = alice_client.post(url)
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert list(alice_client.get(reverse("accounts:api_keys")).context["keys"]) == []


@pytest.mark.parametrize("method", ["get", "post"])
def test_user_cannot_revoke_another_users_key(client, user, other_user, method):
    key, _raw = api_key_create(other_user, name="bobs")
    client.force_login(user)
    response = getattr(client, method)(reverse("accounts:api_key_revoke", args=[key.pk]))
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_api_key_list_shows_only_own_keys(alice_client, user, other_user):
    api_key_create(user, name="mine")
    api_key_create(other_user, name="theirs")
    keys = alice_client.get(reverse("accounts:api_keys")).context["keys"]
    assert [k.name for k in keys] == ["mine"]
    assert ApiKey.objects.count() == 2


# --- languages and themes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "lang", "nav"),
    [
        ("zh-CN,zh;q=0.9", "zh-hans", ["商店", "我的智能体", "对话", "登录", "注册"]),
        ("zh-TW,zh;q=0.9", "zh-hant", ["商店", "我的智能體", "對話", "登入", "註冊"]),
        ("en-US,en;q=0.9", "en", ["Store", "My agents", "Chats", "Log in", "Sign up"]),
    ],
)
@pytest.mark.parametrize("url", ["/", "/accounts/login/", "/accounts/register/"])
def test_pages_render_in_the_browser_language(client, accept, lang, nav, url):
    response = client.get(url, headers={"accept-language": accept})
    html = response.content.decode()
    assert f'<html lang="{lang}"' in html
    assert response["Content-Language"] == lang
    assert [word in html for word in nav] == [True] * len(nav)


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("zh-hans", ["个人资料", "密码", "API 密钥", "我的智能体", "退出登录"]),
        ("zh-hant", ["個人資料", "密碼", "API 金鑰", "我的智能體", "登出"]),
    ],
)
@pytest.mark.parametrize(
    "url", ["/accounts/profile/", "/accounts/password/", "/accounts/api-keys/"]
)
def test_account_pages_use_the_stored_language(alice_client, user, lang, words, url):
    User.objects.filter(pk=user.pk).update(language=lang)
    response = alice_client.get(url, headers={"accept-language": "en"})
    html = response.content.decode()
    assert f'<html lang="{lang}"' in html
    assert [word in html for word in words] == [True] * len(words)


def test_language_switch_stores_the_users_preference(alice_client, user):
    response = alice_client.post(
        reverse("accounts:set_language"), {"language": "zh-hant", "next": "/accounts/profile/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/profile/"
    assert response.cookies["django_language"].value == "zh-hant"
    user.refresh_from_db()
    assert user.language == "zh-hant"


def test_language_switch_for_visitor_sets_cookie_only(client):
    response = client.post(reverse("accounts:set_language"), {"language": "zh-hans", "next": "/"})
    assert response.cookies["django_language"].value == "zh-hans"
    assert '<html lang="zh-hans"' in client.get("/").content.decode()


def test_stored_language_wins_over_cookie_and_browser(alice_client, user):
    User.objects.filter(pk=user.pk).update(language="zh-hant")
    alice_client.cookies["django_language"] = "zh-hans"
    html = alice_client.get("/", headers={"accept-language": "en"}).content.decode()
    assert '<html lang="zh-hant"' in html


def test_request_language_does_not_leak_into_the_thread(client):
    before = translation.get_language()
    client.get("/", headers={"accept-language": "zh-TW"})
    assert translation.get_language() == before


def test_unset_language_falls_back_to_default(client, settings):
    html = client.get("/", headers={"accept-language": "fr-FR"}).content.decode()
    assert f'<html lang="{settings.LANGUAGE_CODE}"' in html


@pytest.mark.parametrize(
    ("cookie", "theme"), [("dark", "dark"), ("light", "light"), ("bad", "system")]
)
def test_visitor_theme_comes_from_cookie(client, cookie, theme):
    client.cookies["theme"] = cookie
    assert f'data-theme="{theme}"' in client.get("/").content.decode()


def test_user_theme_comes_from_the_account_not_the_cookie(alice_client, user):
    User.objects.filter(pk=user.pk).update(theme="dark")
    alice_client.cookies["theme"] = "light"
    assert 'data-theme="dark"' in alice_client.get("/").content.decode()


@pytest.mark.parametrize(
    ("role_fixture", "portal", "admin"),
    [("user", False, False), ("developer", True, False), ("admin_user", True, True)],
)
def test_navigation_shows_portal_and_admin_by_role(client, request, role_fixture, portal, admin):
    client.force_login(request.getfixturevalue(role_fixture))
    html = client.get("/").content.decode()
    assert ('href="/portal/"' in html, 'href="/admin/"' in html) == (portal, admin)


@pytest.mark.parametrize(
    ("url", "current"),
    [
        ("/", 'href="/" data-nav="store" aria-current="page"'),
        ("/my-agents/", 'href="/my-agents/" data-nav="my-agents" aria-current="page"'),
        ("/accounts/api-keys/", 'href="/accounts/api-keys/" aria-current="page"'),
    ],
)
def test_navigation_marks_the_current_section(alice_client, url, current):
    html = alice_client.get(url).content.decode()
    assert current in html
