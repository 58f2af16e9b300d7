"""The developer portal pages (SPEC §4.3): permissions, create → edit → submit, versions,
archive, statistics."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents import services
from agents.config import default_config
from agents.models import Agent, AgentVersion
from agents.tests.factories import (
    InstallFactory,
    KnowledgeBaseFactory,
    RatingFactory,
    published_agent,
)
from integrations.tests.factories import LLMModelAccessFactory, LLMModelFactory


@pytest.fixture
def dan(db):
    return UserFactory(username="dan", role=Role.DEVELOPER)


@pytest.fixture
def draft(developer):
    agent = services.agent_create(developer, data={"name": "Helper", "short_description": "Helps."})
    version = services.agent_version_create(
        developer, agent=agent, version="0.1.0", config=default_config()
    )
    return version


def _version_form_data(version, **overrides) -> dict:
    """What the version page posts when the developer only changes ``overrides``."""
    config = version.config
    text = json.dumps(config, ensure_ascii=False, indent=2)
    data = {
        "version": version.version,
        "changelog": version.changelog,
        "agent_type": config["agent_type"],
        "llm_model": "",
        "temperature": "0.7",
        "max_tokens": "2048",
        "stream": "on",
        "system_prompt": "",
        "persona_variables": "",
        "few_shot": "",
        "memory_type": "database",
        "memory_window": "20",
        "top_k": "5",
        "tool_approval": "",
        "config_json": text,
        "config_json_original": text,
    }
    data.update(overrides)
    return data


# --- permissions ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/portal/", "/portal/agents/new/"])
def test_portal_sends_anonymous_visitors_to_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("url", ["/portal/", "/portal/agents/new/"])
def test_portal_refuses_plain_users(client, user, url):
    client.force_login(user)
    assert client.get(url).status_code == 403


def test_plain_user_cannot_open_a_developers_agent(client, user, draft):
    client.force_login(user)
    assert client.get(reverse("portal:agent", args=[draft.agent_id])).status_code == 403


@pytest.mark.parametrize(
    ("method", "name", "with_version"),
    [
        ("get", "portal:agent", False),
        ("get", "portal:agent_edit", False),
        ("get", "portal:stats", False),
        ("get", "portal:version", True),
        ("post", "portal:version", True),
        ("post", "portal:version_submit", True),
        ("post", "portal:version_delete", True),
        ("post", "portal:version_new", False),
        ("post", "portal:agent_archive", False),
        ("post", "portal:agent_delete", False),
    ],
)
def test_another_developers_agent_is_404(client, dan, draft, method, name, with_version):
    args = [draft.agent_id, draft.pk] if with_version else [draft.agent_id]
    client.force_login(dan)
    response = getattr(client, method)(reverse(name, args=args), {"version": "9.0.0"})
    assert response.status_code == 404
    assert Agent.objects.filter(pk=draft.agent_id, status=Agent.Status.DRAFT).count() == 1
    assert AgentVersion.objects.filter(agent_id=draft.agent_id).count() == 1


def test_portal_index_lists_only_my_agents(client, developer, dan, draft):
    services.agent_create(dan, data={"name": "Dan's agent"})
    client.force_login(developer)
    html = client.get("/portal/").content.decode()
    assert re.findall(r'<tr data-agent="([^"]+)"', html) == [draft.agent.slug]
    assert "Dan&#x27;s agent" not in html
    assert "1 draft" in html


# --- create → edit → submit ----------------------------------------------------------------


def test_create_edit_and_submit_through_the_pages(
    client, developer, django_capture_on_commit_callbacks
):
    client.force_login(developer)
    response = client.post(
        "/portal/agents/new/",
        {
            "name": "Trip Planner",
            "short_description": "Plans trips.",
            "description": "# Plans\nYour **holidays**.",
            "icon": "🧳",
            "category": "",
            "tags": "travel, 旅行",
            "mode": "chat",
            "agent_type": "plan_execute",
        },
    )
    agent = Agent.objects.get(name="Trip Planner")
    version = agent.versions.get()
    assert response.status_code == 302
    assert response["Location"] == f"/portal/agents/{agent.pk}/versions/{version.pk}/"
    assert (agent.developer, agent.status, agent.agent_type) == (
        developer,
        Agent.Status.DRAFT,
        "plan_execute",
    )
    assert sorted(tag.name for tag in agent.tags.all()) == ["travel", "旅行"]
    assert (version.version, version.config["agent_type"]) == ("0.1.0", "plan_execute")

    page = client.get(response["Location"]).content.decode()
    # The test-chat panel (filled in by the chat feature) sits next to the draft.
    assert 'id="test-chat"' in page
    assert "Test chat" in page

    url = reverse("portal:version", args=[agent.pk, version.pk])
    response = client.post(
        url,
        _version_form_data(
            version,
            agent_type="plan_execute",
            temperature="0.3",
            max_tokens="1000",
            system_prompt="You plan trips for {{ traveller }}.",
            persona_variables="traveller = friend  # who travels",
            few_shot="User: Weekend in Rome?\nAssistant: Day 1: Colosseum.",
            builtin_tools=["current_time"],
            tool_approval="python_exec: ask",
            memory_window="30",
        ),
    )
    assert response.status_code == 302
    version.refresh_from_db()
    config = version.config
    assert config["model"]["temperature"] == 0.3
    assert config["model"]["max_tokens"] == 1000
    assert config["system_prompt"] == "You plan trips for {{ traveller }}."
    assert config["persona"] == {
        "variables": {"traveller": {"default": "friend", "description": "who travels"}},
        "few_shot": [{"user": "Weekend in Rome?", "assistant": "Day 1: Colosseum."}],
    }
    assert config["builtin_tools"] == ["current_time"]
    assert config["tool_approval"] == {"python_exec": "ask"}
    assert config["memory"]["window"] == 30

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("portal:version_submit", args=[agent.pk, version.pk]),
            {"changelog": "First trip planner."},
        )
    version.refresh_from_db()
    assert response.status_code == 302
    assert version.status == AgentVersion.Status.SUBMITTED
    assert version.changelog == "First trip planner."
    page = client.get(url).content.decode()
    assert "A submitted version cannot change." in page
    assert "Submitted" in page


def test_version_page_shows_the_saved_configuration(client, developer, draft):
    services.agent_version_update(
        developer,
        version=draft,
        data={
            "config": {
                **draft.config,
                "system_prompt": "Be brief.",
                "builtin_tools": ["current_time"],
            }
        },
    )
    client.force_login(developer)
    form = client.get(reverse("portal:version", args=[draft.agent_id, draft.pk])).context["form"]
    assert form["version"].value() == "0.1.0"
    assert form["temperature"].value() == 0.7
    assert form["system_prompt"].value() == "Be brief."
    assert form["builtin_tools"].value() == ["current_time"]
    assert json.loads(form["config_json"].value())["system_prompt"] == "Be brief."


def test_json_reformatted_by_the_browser_is_not_an_edit(client, developer, draft):
    client.force_login(developer)
    data = _version_form_data(draft, system_prompt="From the fields.")
    data["config_json"] = data["config_json"].replace("\n", "\r\n")
    client.post(reverse("portal:version", args=[draft.agent_id, draft.pk]), data)
    draft.refresh_from_db()
    assert draft.config["system_prompt"] == "From the fields."


def test_editing_the_json_wins_over_the_fields(client, developer, draft):
    client.force_login(developer)
    config = dict(draft.config, system_prompt="From the JSON.", agent_type="dialog")
    response = client.post(
        reverse("portal:version", args=[draft.agent_id, draft.pk]),
        _version_form_data(
            draft,
            system_prompt="From the fields.",
            temperature="",
            config_json=json.dumps(config),
        ),
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.config["system_prompt"], draft.config["agent_type"]) == (
        "From the JSON.",
        "dialog",
    )


@pytest.mark.parametrize(
    ("config_json", "message"),
    [
        ("{not json", "Not valid JSON"),
        ("[1, 2]", "The configuration must be a JSON object."),
        ('{"agent_type": "wizard"}', "$.agent_type"),
    ],
)
def test_bad_json_is_shown_as_a_form_error(client, developer, draft, config_json, message):
    client.force_login(developer)
    response = client.post(
        reverse("portal:version", args=[draft.agent_id, draft.pk]),
        _version_form_data(draft, config_json=config_json),
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    draft.refresh_from_db()
    assert draft.config == default_config()


def test_version_form_offers_only_usable_knowledge_bases(client, developer, dan, draft):
    mine = KnowledgeBaseFactory(owner=developer, name="My notes")
    KnowledgeBaseFactory(owner=dan, name="Dan private")
    KnowledgeBaseFactory(owner=dan, name="Dan public", is_public=True)
    client.force_login(developer)
    html = client.get(reverse("portal:version", args=[draft.agent_id, draft.pk])).content.decode()
    assert "My notes" in html
    assert "Dan public" in html
    assert "Dan private" not in html

    client.post(
        reverse("portal:version", args=[draft.agent_id, draft.pk]),
        _version_form_data(draft, knowledge_bases=[str(mine.pk)], top_k="3"),
    )
    draft.refresh_from_db()
    assert draft.config["knowledge"]["knowledge_base_ids"] == [str(mine.pk)]
    assert draft.config["knowledge"]["top_k"] == 3


def test_version_form_offers_only_models_the_developer_may_use(client, developer, draft):
    open_model = LLMModelFactory(display_name="Open model")
    LLMModelFactory(display_name="Switched off", is_active=False)
    LLMModelAccessFactory(model=LLMModelFactory(display_name="Reviewers only"), role="reviewer")
    LLMModelAccessFactory(model=LLMModelFactory(display_name="Not for Dora"), user=developer,
                          allow=False)  # fmt: skip
    client.force_login(developer)
    form = client.get(reverse("portal:version", args=[draft.agent_id, draft.pk])).context["form"]
    labels = [label for _value, label in form.fields["llm_model"].choices]
    assert "Open model" in labels
    assert "Switched off" not in labels
    assert "Reviewers only" not in labels
    assert "Not for Dora" not in labels

    client.post(
        reverse("portal:version", args=[draft.agent_id, draft.pk]),
        _version_form_data(draft, llm_model=str(open_model.pk)),
    )
    draft.refresh_from_db()
    assert draft.config["model"]["llm_model_id"] == str(open_model.pk)


def test_posting_another_users_knowledge_base_is_refused(client, developer, dan, draft):
    private = KnowledgeBaseFactory(owner=dan, name="Dan private")
    client.force_login(developer)
    response = client.post(
        reverse("portal:version", args=[draft.agent_id, draft.pk]),
        _version_form_data(draft, knowledge_bases=[str(private.pk)]),
    )
    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()
    draft.refresh_from_db()
    assert draft.config["knowledge"]["knowledge_base_ids"] == []


def test_submit_without_changelog_is_refused(client, developer, draft):
    client.force_login(developer)
    response = client.post(
        reverse("portal:version_submit", args=[draft.agent_id, draft.pk]),
        {"changelog": ""},
        follow=True,
    )
    assert "Describe what changed in the changelog." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == AgentVersion.Status.DRAFT


def test_submitted_version_cannot_be_edited(client, developer, draft):
    services.agent_version_submit(developer, version=draft, changelog="Ready.")
    client.force_login(developer)
    response = client.post(
        reverse("portal:version", args=[draft.agent_id, draft.pk]),
        _version_form_data(draft, system_prompt="Sneaky edit."),
        follow=True,
    )
    assert "Only drafts can be edited" in response.content.decode()
    draft.refresh_from_db()
    assert draft.config["system_prompt"] == ""


def test_rejected_version_shows_the_reviewer_note(client, developer, reviewer, draft):
    services.agent_version_submit(developer, version=draft, changelog="Ready.")
    services.review_reject(reviewer, version=draft, note="The prompt is empty.")
    client.force_login(developer)
    overview = client.get(reverse("portal:agent", args=[draft.agent_id])).content.decode()
    page = client.get(reverse("portal:version", args=[draft.agent_id, draft.pk])).content.decode()
    assert "The prompt is empty." in overview
    assert "Rejected" in overview
    assert "The prompt is empty." in page


def test_new_version_deprecate_and_archive(client, developer, reviewer, user):
    agent = published_agent(developer=developer, slug="live", version="1.0.0")
    old = agent.current_version
    newer = services.agent_version_create(
        developer, agent=agent, version="1.1.0", config=default_config()
    )
    services.agent_version_submit(developer, version=newer, changelog="Better.")
    services.review_approve(reviewer, version=newer)
    client.force_login(developer)

    response = client.post(reverse("portal:version_new", args=[agent.pk]), {"version": "1.2.0"})
    created = agent.versions.get(version="1.2.0")
    assert response["Location"] == reverse("portal:version", args=[agent.pk, created.pk])
    assert created.status == AgentVersion.Status.DRAFT

    client.post(reverse("portal:version_deprecate", args=[agent.pk, old.pk]))
    old.refresh_from_db()
    assert old.status == AgentVersion.Status.DEPRECATED

    client.post(reverse("portal:agent_archive", args=[agent.pk]))
    agent.refresh_from_db()
    assert agent.status == Agent.Status.ARCHIVED
    client.force_login(user)
    assert client.get(reverse("store:agent", args=["live"])).status_code == 404


def test_duplicating_a_builtin_agent(client, developer):
    builtin = Agent.objects.get(slug="builtin-react")
    client.force_login(developer)
    html = client.get("/portal/").content.decode()
    assert f'action="/portal/agents/{builtin.pk}/duplicate/"' in html
    response = client.post(reverse("portal:duplicate", args=[builtin.pk]))
    copy = Agent.objects.get(developer=developer)
    assert response["Location"] == reverse("portal:agent", args=[copy.pk])
    assert copy.name == "ReAct Assistant (copy)"
    assert copy.versions.get().status == AgentVersion.Status.DRAFT


def test_statistics_page_charts_installs_and_ratings(client, developer, user, other_user):
    agent = published_agent(developer=developer, slug="stats")
    InstallFactory(user=user, agent=agent)
    InstallFactory(user=other_user, agent=agent)
    RatingFactory(user=user, agent=agent, stars=5)
    Agent.objects.filter(pk=agent.pk).update(install_count=2, rating_count=1, rating_avg=5)
    client.force_login(developer)
    response = client.get(reverse("portal:stats", args=[agent.pk]), {"days": "30"})
    html = response.content.decode()
    activity = json.loads(re.search(r'id="chart-activity"[^>]*>(.*?)</script>', html).group(1))
    histogram = json.loads(re.search(r'id="chart-histogram"[^>]*>(.*?)</script>', html).group(1))
    today = timezone.localdate().isoformat()
    assert activity["labels"][-1] == today
    assert len(activity["labels"]) == 30
    assert [(s["name"], s["values"][-1], sum(s["values"])) for s in activity["series"]] == [
        ("Installs", 2, 2),
        ("Ratings", 1, 1),
        ("Chats", 0, 0),
        ("Messages", 0, 0),
    ]
    assert histogram["series"][0]["values"] == [0, 0, 0, 0, 1]
    assert 'data-total="installs">2<' in html
