"""The store journey in a real browser against the real ASGI server (SPEC §4.2–4.4):
a developer creates an agent and submits a version in the portal → a reviewer approves it in
the Django admin → a user finds it by search, installs it and rates it; plus the store on a
375 px phone."""

from __future__ import annotations

import pytest

from accounts.models import Role
from accounts.tests.factories import PASSWORD, UserFactory
from agents.models import Agent, AgentVersion, Install, Rating

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}


def _log_in(page, server, username: str) -> None:
    page.goto(server.url_for("/accounts/login/"))
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.url_for("/"))


def _flash(page) -> str:
    flash = page.locator(".flash")
    if not flash.count():
        raise AssertionError(f"no message on {page.url}:\n{page.locator('main').inner_text()}")
    return flash.inner_text()


def test_developer_publishes_reviewer_approves_user_installs_and_rates(
    live_server_asgi, new_page, tmp_path
):
    server = live_server_asgi
    UserFactory(username="dora", display_name="Dora", role=Role.DEVELOPER)
    UserFactory(username="rex", display_name="Rex", role=Role.REVIEWER, is_staff=True)
    UserFactory(username="alice", display_name="Alice", role=Role.USER)

    # --- the developer creates the agent and submits its first version ---------------------
    dev = new_page()
    _log_in(dev, server, "dora")
    dev.get_by_role("link", name="Developer portal").click()
    dev.get_by_role("link", name="Create agent").click()
    dev.locator("#id_name").fill("Haiku Helper")
    dev.locator("#id_short_description").fill("Writes haiku about anything.")
    dev.locator("#id_description").fill("Give it a topic, get **three lines**.")
    dev.locator("#id_icon").fill("🌸")
    dev.locator("#id_tags").fill("poetry, 诗歌")
    dev.locator("#id_agent_type").select_option("dialog")
    dev.get_by_role("button", name="Create agent").click()
    assert _flash(dev) == "Haiku Helper is created. Configure its first version."
    # Waits: the click returns once the new page has started, perhaps before its aside.
    dev.get_by_role("heading", name="Test chat").wait_for(state="visible")

    dev.locator("#id_system_prompt").fill("You write haiku about {{ topic }}.")
    dev.locator("#id_persona_variables").fill("topic = the sea")
    dev.get_by_role("button", name="Save draft").click()
    assert _flash(dev) == "The draft is saved."
    dev.locator(
        "#submit-title + * textarea[name=changelog], form[action$='/submit/'] textarea"
    ).first.fill("First version.")
    dev.get_by_role("button", name="Submit for review").click()
    assert _flash(dev) == "Version 0.1.0 is submitted for review."
    version = AgentVersion.objects.get(agent__name="Haiku Helper")
    assert version.status == AgentVersion.Status.SUBMITTED
    assert version.config["persona"]["variables"] == {"topic": {"default": "the sea"}}

    # Not in the store before review.
    user = new_page()
    _log_in(user, server, "alice")
    user.goto(server.url_for("/search/?q=haiku"))
    assert user.locator(".agent-card").count() == 0

    # --- the reviewer approves in the Django admin -----------------------------------------
    admin = new_page()
    _log_in(admin, server, "rex")
    admin.goto(server.url_for("/admin/agents/agentversion/"))
    admin.locator("#result_list").get_by_role("link", name="Haiku Helper").click()
    admin.get_by_label("Note to the developer").fill("Lovely.")
    admin.get_by_role("button", name="Approve and publish").click()
    assert "approved and published" in admin.locator(".messagelist").inner_text()
    agent = Agent.objects.get(name="Haiku Helper")
    assert (agent.status, agent.current_version_id) == (Agent.Status.PUBLISHED, version.pk)

    # --- the user finds it, installs it and rates it ----------------------------------------
    user.goto(server.url_for("/"))
    user.get_by_label("Search agents").fill("haiku")
    user.get_by_role("button", name="Search").click()
    assert user.locator(".agent-card h3").all_inner_texts() == ["Haiku Helper"]
    user.get_by_role("link", name="Haiku Helper").click()
    assert user.locator(".markdown").inner_html().strip() == (
        "<p>Give it a topic, get <strong>three lines</strong>.</p>"
    )
    user.get_by_role("button", name="Install").click()
    assert _flash(user) == "Haiku Helper is installed."
    assert user.locator("[data-chat-link]").get_attribute("href") == (
        f"/chats/new?agent={agent.pk}"
    )
    user.locator("label[for=star-5]").click()
    user.get_by_label("Your review").fill("Beautiful little poems.")
    user.get_by_role("button", name="Submit review").click()
    assert _flash(user) == "Thank you for your review."
    assert "Beautiful little poems." in user.locator("#reviews .reviews").inner_text()
    assert Install.objects.filter(agent=agent, user__username="alice").count() == 1
    assert Rating.objects.get(agent=agent).stars == 5
    agent.refresh_from_db()
    assert (agent.install_count, agent.rating_count, agent.rating_avg) == (1, 1, 5)

    user.goto(server.url_for("/my-agents/"))
    assert user.locator("[data-install] h3").all_inner_texts() == ["Haiku Helper"]
    user.screenshot(path=str(tmp_path / "my-agents.png"), full_page=True)


def test_store_pages_fit_a_phone(live_server_asgi, new_page, tmp_path):
    from agents.tests.factories import published_agent

    developer = UserFactory(username="dora", display_name="Dora", role=Role.DEVELOPER)
    for n in range(6):
        published_agent(
            developer=developer,
            name=f"Phone Agent {n}",
            slug=f"phone-agent-{n}",
            short_description="A long enough description to wrap on a narrow screen.",
            is_featured=n < 3,
        )
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    for path in ("/", "/search/?q=phone", "/agents/phone-agent-0/"):
        page.goto(live_server_asgi.url_for(path))
        # Nothing sticks out sideways: the page is exactly as wide as the phone.
        assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    page.screenshot(path=str(tmp_path / "detail-phone.png"), full_page=True)
