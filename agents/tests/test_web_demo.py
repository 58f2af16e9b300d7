"""The demo catalogue (agents.demo.seed_demo_catalogue) used by ``manage.py seed_demo``."""

from __future__ import annotations

import pytest
from django.db.models import Count

from accounts.demo import seed_demo_users
from agents.demo import AGENTS, seed_demo_catalogue
from agents.models import Agent, AgentVersion, Category, Install, Notification, Rating
from agents.selectors import store_agents

SOME = ["code-reviewer", "huiyi-jiyao", "market-research-scout"]


@pytest.fixture
def demo_accounts(db):
    return seed_demo_users()


def _counts() -> tuple[int, ...]:
    return (
        Agent.objects.count(),
        AgentVersion.objects.count(),
        Install.objects.count(),
        Rating.objects.count(),
        Category.objects.count(),
        Notification.objects.count(),
    )


def test_demo_catalogue_fills_the_store_and_a_second_run_changes_nothing(demo_accounts):
    summary = seed_demo_catalogue()
    demo = store_agents().filter(slug__in=[spec.slug for spec in AGENTS])
    assert demo.count() == len(AGENTS) == 23
    assert Category.objects.filter(parent__isnull=True, agents__in=demo).distinct().count() == 7
    assert demo.filter(is_featured=True).count() == 7
    assert (
        summary
        == f"23 agents, {Install.objects.count()} installs, {Rating.objects.count()} ratings"
    )
    assert Install.objects.count() > 150
    assert Rating.objects.filter(text__gt="").count() > 50

    before = _counts()
    assert seed_demo_catalogue() == "already present"
    assert _counts() == before


def test_demo_versions_are_reviewed_and_counters_consistent(demo_accounts):
    seed_demo_catalogue(only=SOME)
    agents = Agent.objects.filter(slug__in=SOME).annotate(
        n_installs=Count("installs", distinct=True), n_ratings=Count("ratings", distinct=True)
    )
    assert agents.count() == 3
    for agent in agents:
        spec = next(spec for spec in AGENTS if spec.slug == agent.slug)
        versions = list(agent.versions.order_by("reviewed_at").values_list("version", "status"))
        assert versions == [(number, AgentVersion.Status.APPROVED) for number, _ in spec.versions]
        assert agent.current_version.version == spec.versions[-1][0]
        assert (agent.install_count, agent.rating_count) == (agent.n_installs, agent.n_ratings)
        assert agent.published_at <= agent.current_version.reviewed_at


def test_installers_get_notices_only_for_updates_after_their_install(demo_accounts):
    seed_demo_catalogue(only=["code-reviewer"])
    versions = list(
        AgentVersion.objects.filter(agent__slug="code-reviewer").order_by("reviewed_at")
    )
    installs = list(Install.objects.filter(agent__slug="code-reviewer"))
    assert len(versions) == 3
    assert len(installs) > 5
    for install in installs:
        later = [v for v in versions if v.reviewed_at > install.installed_at]
        notices = Notification.objects.filter(
            user=install.user, agent__slug="code-reviewer", kind="agent_updated"
        )
        assert sorted(n.version_id for n in notices) == sorted(v.pk for v in later)
        assert install.seen_version == ([v for v in versions if v not in later][-1])
    assert any(install.update_available for install in installs)
