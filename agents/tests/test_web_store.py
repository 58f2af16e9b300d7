"""The store website: home, categories, search page, agent detail, installs, ratings,
My agents (SPEC §4.2)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents import services
from agents.models import Agent, AgentVersion, Install, Notification, Rating, Tag
from agents.tests.factories import (
    AgentFactory,
    AgentVersionFactory,
    CategoryFactory,
    InstallFactory,
    RatingFactory,
    published_agent,
)

CARD = re.compile(r'<article class="agent-card" data-agent="([^"]+)"')


def _section(html: str, section_id: str) -> str:
    start = html.index(f'id="{section_id}"')
    return html[start : html.index("</section>", start)]


def _cards(html: str) -> list[str]:
    return CARD.findall(html)


def _page(client, url: str, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture(autouse=True)
def _no_builtins(db):
    """The built-in agents (created after migrate) would be in every listing; these tests
    count exact cards, so they are taken out of the store."""
    Agent.objects.filter(is_builtin=True).update(status=Agent.Status.ARCHIVED)


@pytest.fixture
def catalogue(developer):
    """Three store agents, plus a draft, a rejected-only agent and an archived agent that
    must never show in the store."""
    tools = CategoryFactory(name="Tools", slug="tools", icon="🛠️")
    writing = CategoryFactory(name="Writing", slug="writing")
    now = timezone.now()
    alpha = published_agent(
        developer=developer,
        name="Alpha Coder",
        slug="alpha",
        category=tools,
        install_count=50,
        rating_avg=Decimal("4.50"),
        rating_count=2,
        is_featured=True,
    )
    beta = published_agent(
        developer=developer,
        name="Beta Writer",
        slug="beta",
        category=writing,
        install_count=5,
        rating_avg=Decimal("3.00"),
        rating_count=1,
    )
    gamma = published_agent(
        developer=developer,
        name="Gamma Planner",
        slug="gamma",
        category=tools,
        install_count=20,
        agent_type="plan_execute",
    )
    Agent.objects.filter(pk=alpha.pk).update(published_at=now - timedelta(days=3))
    Agent.objects.filter(pk=beta.pk).update(published_at=now - timedelta(days=2))
    Agent.objects.filter(pk=gamma.pk).update(published_at=now - timedelta(days=1))
    draft = AgentFactory(name="Secret Draft", slug="secret-draft", developer=developer)
    AgentVersionFactory(agent=draft, version="0.1.0")
    rejected = AgentFactory(name="Rejected One", slug="rejected-one", developer=developer)
    AgentVersionFactory(agent=rejected, version="0.1.0", status=AgentVersion.Status.REJECTED)
    archived = published_agent(developer=developer, name="Old Archived", slug="old-archived")
    Agent.objects.filter(pk=archived.pk).update(status=Agent.Status.ARCHIVED)
    return {"alpha": alpha, "beta": beta, "gamma": gamma, "tools": tools, "writing": writing}


# --- home and categories ---------------------------------------------------------------------


def test_home_rows_list_store_agents_in_order(client, catalogue):
    html = _page(client, reverse("store:home"))
    assert _cards(_section(html, "row-featured")) == ["alpha"]
    assert _cards(_section(html, "row-popular")) == ["alpha", "gamma", "beta"]
    assert _cards(_section(html, "row-newest")) == ["gamma", "beta", "alpha"]
    assert _cards(_section(html, "row-top-rated")) == ["alpha", "beta"]


def test_home_lists_categories_with_counts(client, catalogue):
    html = _section(_page(client, reverse("store:home")), "categories-title")
    assert 'href="/categories/tools/"' in html
    assert "2 agents" in html
    assert "1 agent<" in html


def test_empty_store_says_so(client, db):
    html = _page(client, reverse("store:home"))
    assert "The store is empty" in html
    assert _cards(html) == []


def test_category_page_includes_subcategories(client, catalogue, developer):
    sub = CategoryFactory(name="Linters", slug="linters", parent=catalogue["tools"])
    published_agent(developer=developer, name="Lint Bot", slug="lint-bot", category=sub)
    html = _page(client, reverse("store:category", args=["tools"]))
    assert _cards(html) == ["alpha", "gamma", "lint-bot"]
    assert 'href="/categories/linters/"' in html


def test_unknown_category_is_404(client, db):
    assert client.get(reverse("store:category", args=["nope"])).status_code == 404


@pytest.mark.parametrize("slug", ["secret-draft", "rejected-one", "old-archived"])
def test_agents_outside_the_store_never_show_and_are_404(client, catalogue, slug):
    for url in (reverse("store:home"), reverse("store:search"), "/categories/tools/"):
        assert slug not in _page(client, url)
    assert client.get(reverse("store:agent", args=[slug])).status_code == 404


def test_other_developers_draft_is_404_for_everyone_else(client, catalogue, other_user):
    draft = Agent.objects.get(slug="secret-draft")
    client.force_login(other_user)
    assert client.get(reverse("store:agent", args=[draft.slug])).status_code == 404
    assert client.get(reverse("store:agent", args=[str(draft.pk)])).status_code == 404


# --- search page ---------------------------------------------------------------------------


def test_search_page_default_sort_is_popularity(client, catalogue):
    html = _page(client, reverse("store:search"))
    assert _cards(html) == ["alpha", "gamma", "beta"]
    assert "3 agents" in html


def test_search_puts_exact_name_first(client, catalogue, developer):
    published_agent(
        developer=developer,
        name="Writer Helper",
        slug="writer-helper",
        short_description="Helps writers; not the Beta Writer.",
        install_count=1000,
    )
    html = _page(client, reverse("store:search"), q="Beta Writer")
    assert _cards(html) == ["beta", "writer-helper"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "tools"}, ["alpha", "gamma"]),
        ({"type": "plan_execute"}, ["gamma"]),
        ({"min_rating": "4"}, ["alpha"]),
        ({"min_rating": "3"}, ["alpha", "beta"]),
        ({"tag": "python"}, ["beta"]),
        ({"sort": "newest"}, ["gamma", "beta", "alpha"]),
        ({"sort": "rating"}, ["alpha", "beta", "gamma"]),
        ({"sort": "name"}, ["alpha", "beta", "gamma"]),
        ({"q": "useful", "sort": "name"}, ["alpha", "beta", "gamma"]),
        ({"category": "unknown"}, []),
    ],
)
def test_search_filters_and_sorting(client, catalogue, params, expected):
    tag = Tag.objects.create(name="python", slug="python")
    catalogue["beta"].tags.add(tag)
    assert _cards(_page(client, reverse("store:search"), **params)) == expected


def test_search_page_offers_tags_of_store_agents_only(client, catalogue):
    Tag.objects.create(name="unused", slug="unused")
    catalogue["alpha"].tags.add(Tag.objects.create(name="coding", slug="coding"))
    Agent.objects.get(slug="secret-draft").tags.add(
        Tag.objects.create(name="hidden", slug="hidden")
    )
    html = _page(client, reverse("store:search"))
    assert "#coding" in html
    assert "#unused" not in html
    assert "#hidden" not in html


def test_search_paginates(client, developer):
    for n in range(30):
        published_agent(developer=developer, name=f"Bot {n:02d}", slug=f"bot-{n:02d}")
    first = _page(client, reverse("store:search"), sort="name")
    second = _page(client, reverse("store:search"), sort="name", page=2)
    assert _cards(first) == [f"bot-{n:02d}" for n in range(24)]
    assert _cards(second) == [f"bot-{n:02d}" for n in range(24, 30)]
    assert "Page 2 of 2" in second
    assert 'href="?sort=name&amp;page=1"' in second


@pytest.mark.parametrize("count", [1, 10])
def test_search_page_query_count_does_not_grow(client, developer, django_assert_num_queries, count):
    category = CategoryFactory()
    for n in range(count):
        published_agent(developer=developer, name=f"Agent {n}", category=category)
    # session-less anonymous request: categories (2), tags, count, page of agents
    with django_assert_num_queries(5):
        response = client.get(reverse("store:search"))
    assert len(_cards(response.content.decode())) == count


@pytest.mark.parametrize("count", [1, 10])
def test_home_query_count_does_not_grow(client, developer, django_assert_num_queries, count):
    for n in range(count):
        published_agent(
            developer=developer,
            name=f"Agent {n}",
            is_featured=True,
            rating_count=1,
            rating_avg=Decimal("4.0"),
        )
    with django_assert_num_queries(6):
        client.get(reverse("store:home"))


# --- detail page ---------------------------------------------------------------------------


def test_detail_page_shows_listing_versions_and_chat_link(client, catalogue, developer):
    alpha = catalogue["alpha"]
    AgentVersion.objects.filter(agent=alpha).update(changelog="First public release.")
    AgentVersionFactory(
        agent=alpha,
        version="0.9.0",
        status=AgentVersion.Status.DEPRECATED,
        changelog="Beta.",
        reviewed_at=timezone.now() - timedelta(days=30),
    )
    AgentVersionFactory(agent=alpha, version="2.0.0", changelog="Unreviewed draft work.")
    AgentVersionFactory(
        agent=alpha, version="1.5.0", status=AgentVersion.Status.REJECTED, changelog="Broken."
    )
    html = _page(client, reverse("store:agent", args=["alpha"]))
    versions = _section(html, "versions")
    assert re.findall(r"<h3>([\d.]+)", versions) == ["1.0.0", "0.9.0"]
    assert "First public release." in versions
    assert "Deprecated" in versions
    assert "Unreviewed draft work." not in html
    assert "Broken." not in html
    assert "<h1>Alpha Coder</h1>" in html
    assert 'href="/categories/tools/"' in html


def test_detail_page_by_uuid_works_too(client, catalogue):
    response = client.get(reverse("store:agent", args=[str(catalogue["alpha"].pk)]))
    assert response.status_code == 200
    assert response.context["agent"] == catalogue["alpha"]


def test_detail_description_markdown_is_sanitised(client, developer):
    published_agent(
        developer=developer,
        slug="md",
        description=(
            "# Title\n\n**bold** [ok](https://example.com) [bad](javascript:alert(1))\n\n"
            "<script>alert('x')</script><iframe src='https://evil.example'></iframe>"
            '<img src="x" onerror="alert(2)">'
        ),
    )
    html = _section(_page(client, reverse("store:agent", args=["md"])), "about-title")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.com" rel="noopener noreferrer nofollow"' in html
    assert "javascript:" not in html
    assert "<script" not in html
    assert "alert('x')" not in html
    assert "<iframe" not in html
    assert "onerror" not in html


def test_detail_rating_histogram_and_reviews_with_replies(client, catalogue, user, other_user):
    alpha = catalogue["alpha"]
    RatingFactory(agent=alpha, user=user, stars=5, text="Great helper.", developer_reply="Thanks!")
    RatingFactory(agent=alpha, user=other_user, stars=4, text="Good.")
    html = _page(client, reverse("store:agent", args=["alpha"]))
    histogram = re.findall(r'<span class="n">(\d+)</span>', html)
    assert histogram == ["1", "1", "0", "0", "0"]
    reviews = _section(html, "reviews")
    assert "Great helper." in reviews
    assert "Developer reply" in reviews
    assert "Thanks!" in reviews
    assert "Good." in reviews


def test_detail_reviews_paginate(client, catalogue):
    alpha = catalogue["alpha"]
    for n in range(12):
        RatingFactory(agent=alpha, stars=3, text=f"review number {n:02d}")
    first = _page(client, reverse("store:agent", args=["alpha"]))
    second = _page(client, reverse("store:agent", args=["alpha"]), page=2)
    assert len(re.findall("review number", first)) == 10
    assert len(re.findall("review number", second)) == 2


def test_detail_recommends_co_installed_agents(client, catalogue, user, other_user):
    alpha, beta, gamma = catalogue["alpha"], catalogue["beta"], catalogue["gamma"]
    for person in (user, other_user):
        InstallFactory(user=person, agent=alpha)
        InstallFactory(user=person, agent=gamma)
    InstallFactory(user=user, agent=beta)
    html = _section(_page(client, reverse("store:agent", args=["alpha"])), "also-title")
    assert re.findall(r'<a href="/agents/([^/]+)/">', html) == ["gamma", "beta"]


def test_anonymous_visitor_is_asked_to_log_in(client, catalogue):
    html = _page(client, reverse("store:agent", args=["alpha"]))
    assert "Log in to install" in html
    assert 'action="/agents/alpha/install/"' not in html


# --- install, uninstall, rating ------------------------------------------------------------


def test_install_then_uninstall_through_the_page(client, catalogue, user):
    client.force_login(user)
    html = _page(client, reverse("store:agent", args=["alpha"]))
    assert 'action="/agents/alpha/install/"' in html

    response = client.post(reverse("store:install", args=["alpha"]))
    assert response.status_code == 302
    assert Install.objects.filter(user=user, agent=catalogue["alpha"]).count() == 1
    assert Agent.objects.get(slug="alpha").install_count == 51
    html = _page(client, reverse("store:agent", args=["alpha"]))
    assert 'action="/agents/alpha/uninstall/"' in html
    assert f'href="/chats/new?agent={catalogue["alpha"].pk}"' in html

    client.post(reverse("store:uninstall", args=["alpha"]))
    assert Install.objects.filter(user=user).count() == 0
    assert Agent.objects.get(slug="alpha").install_count == 50


def test_install_needs_login_and_post(client, catalogue, user):
    response = client.post(reverse("store:install", args=["alpha"]))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    client.force_login(user)
    assert client.get(reverse("store:install", args=["alpha"])).status_code == 405
    assert Install.objects.count() == 0


def test_installing_a_draft_is_404(client, catalogue, user):
    client.force_login(user)
    assert client.post(reverse("store:install", args=["secret-draft"])).status_code == 404
    assert Install.objects.count() == 0


def test_rating_needs_an_install(client, catalogue, user):
    client.force_login(user)
    response = client.post(reverse("store:rate", args=["alpha"]), {"stars": "5"}, follow=True)
    assert Rating.objects.count() == 0
    assert "Install the agent before rating it." in response.content.decode()


def test_rate_then_edit_the_rating(client, catalogue, user):
    InstallFactory(user=user, agent=catalogue["gamma"])
    client.force_login(user)
    client.post(reverse("store:rate", args=["gamma"]), {"stars": "5", "text": "Lovely."})
    client.post(reverse("store:rate", args=["gamma"]), {"stars": "2", "text": "Changed my mind."})
    rating = Rating.objects.get(user=user)
    assert (rating.stars, rating.text) == (2, "Changed my mind.")
    gamma = Agent.objects.get(slug="gamma")
    assert (gamma.rating_count, gamma.rating_sum, gamma.rating_avg) == (1, 2, Decimal("2.00"))


def test_developer_replies_to_a_review_and_others_cannot(client, catalogue, user, developer):
    rating = RatingFactory(agent=catalogue["alpha"], user=user, stars=3, text="Meh.")
    url = reverse("store:reply", args=["alpha", rating.pk])
    client.force_login(user)
    client.post(url, {"reply": "I am not the developer"})
    rating.refresh_from_db()
    assert rating.developer_reply == ""

    client.force_login(developer)
    html = _page(client, reverse("store:agent", args=["alpha"]))
    assert f'action="{url}"' in html
    client.post(url, {"reply": "Fixed in 1.1."})
    rating.refresh_from_db()
    assert rating.developer_reply == "Fixed in 1.1."


# --- my agents -----------------------------------------------------------------------------


def test_my_agents_lists_installs_with_update_badge(client, catalogue, user, other_user, reviewer):
    alpha, beta = catalogue["alpha"], catalogue["beta"]
    InstallFactory(user=user, agent=alpha, seen_version=alpha.current_version)
    InstallFactory(user=user, agent=beta, seen_version=beta.current_version)
    InstallFactory(user=other_user, agent=catalogue["gamma"])
    newer = AgentVersionFactory(
        agent=beta,
        version="1.1.0",
        status=AgentVersion.Status.SUBMITTED,
        submitted_at=timezone.now(),
        check_status=AgentVersion.CheckStatus.PASSED,
    )
    services.review_approve(reviewer, version=newer, note="ok")

    client.force_login(user)
    html = _page(client, reverse("store:my_agents"))
    assert re.findall(r'data-install="([^"]+)"', html) == ["beta", "alpha"]
    assert html.count("data-update-badge") == 1
    assert "Update available: 1.1.0" in html
    assert "Beta Writer was updated to version 1.1.0." in html

    # Opening the agent's page is seeing the update.
    detail = _page(client, reverse("store:agent", args=["beta"]))
    assert "Updated to version 1.1.0." in detail
    assert "data-update-badge" not in _page(client, reverse("store:my_agents"))


def test_my_agents_mark_notifications_read(client, catalogue, user):
    Notification.objects.create(user=user, kind="agent_updated", message="Something changed.")
    client.force_login(user)
    client.post(reverse("store:notifications_read"))
    assert Notification.objects.filter(user=user, read_at__isnull=True).count() == 0


def test_my_agents_needs_login(client, db):
    response = client.get(reverse("store:my_agents"))
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/my-agents/"


def test_store_pages_render_in_chinese(client, catalogue):
    user = UserFactory(username="li", role=Role.USER, language="zh-hans")
    client.force_login(user)
    html = _page(client, reverse("store:home"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert '<html lang="zh-hans"' in html
