"""An account journey in a real browser against the real ASGI server (SPEC §3, §4.2):
register → log out → log in → theme toggle stored on the account → language switch; and the
phone layout, where the navigation hides behind the Menu button."""

from __future__ import annotations

import re

import pytest

from accounts.models import User
from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}


def _theme(page) -> str:
    return page.locator("html").get_attribute("data-theme")


def test_register_login_theme_and_language_journey(live_server_asgi, page, tmp_path):
    server = live_server_asgi
    page.goto(server.url_for("/accounts/register/"))
    page.get_by_label("Username", exact=True).fill("carol")
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label("Display name").fill("Carol")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(server.url_for("/"))
    assert page.locator(".user-link").inner_text() == "C\nCarol"
    assert page.locator(".flash").inner_text() == "Welcome to AgentStore, Carol!"
    assert User.objects.get(username="carol").email == "carol@example.com"

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(server.url_for("/"))
    assert page.get_by_role("link", name="Log in").is_visible()

    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Username or email").fill("carol@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.url_for("/"))
    assert page.locator(".user-link").is_visible()

    assert _theme(page) == "system"
    with page.expect_response(server.url_for("/api/v1/users/me")) as saved:
        page.get_by_role("button", name=re.compile(r"^Theme:")).click()
    assert saved.value.status == 200
    assert _theme(page) == "light"
    with page.expect_response(server.url_for("/api/v1/users/me")):
        page.get_by_role("button", name=re.compile(r"^Theme:")).click()
    assert _theme(page) == "dark"
    page.context.clear_cookies(name="theme")  # the account, not the cookie, keeps it
    page.reload()
    assert _theme(page) == "dark"
    assert User.objects.get(username="carol").theme == "dark"

    page.get_by_label("Language").select_option("zh-hans")
    page.wait_for_load_state()
    page.locator("html[lang=zh-hans]").wait_for()
    nav = page.get_by_role("navigation", name="主导航")
    assert nav.inner_text().split("\n") == ["商店", "我的智能体", "对话"]
    assert page.get_by_role("button", name="退出登录").is_visible()
    assert User.objects.get(username="carol").language == "zh-hans"
    page.screenshot(path=str(tmp_path / "desktop-zh-hans-dark.png"), full_page=True)


def test_phone_layout_hides_navigation_behind_menu(live_server_asgi, new_page, tmp_path):
    UserFactory(username="dave", display_name="Dave")
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(live_server_asgi.url_for("/accounts/login/"))
    page.get_by_label("Username or email").fill("dave")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server_asgi.url_for("/"))

    menu_button = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Main navigation")
    assert menu_button.is_visible()
    assert not nav.is_visible()
    page.screenshot(path=str(tmp_path / "phone-closed.png"))
    menu_button.click()
    assert nav.is_visible()
    assert menu_button.get_attribute("aria-expanded") == "true"
    assert page.get_by_role("link", name="Chats").is_visible()
    # Nothing sticks out sideways on a 375 px screen.
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    page.screenshot(path=str(tmp_path / "phone-menu-open.png"), full_page=True)
    page.keyboard.press("Escape")
    assert not nav.is_visible()


def test_wrong_password_in_browser_shows_one_message(live_server_asgi, page):
    UserFactory(username="erin")
    page.goto(live_server_asgi.url_for("/accounts/login/"))
    page.get_by_label("Username or email").fill("erin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == (
        "Please enter a correct username or email and password."
    )
