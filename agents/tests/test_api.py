from __future__ import annotations

import pytest
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents import services
from agents.config import default_config
from agents.models import Agent, AgentVersion, Install, Notification, Tag
from agents.tests.factories import (
    AgentFactory,
    AgentVersionFactory,
    CategoryFactory,
    InstallFactory,
    KnowledgeBaseFactory,
    RatingFactory,
    published_agent,
)

pytestmark = pytest.mark.django_db

API = "/api/v1"
BUILTINS = 5  # one built-in agent per agent type is always in the store


@pytest.fixture(autouse=True)
def _english():
    # Messages are asserted in English, whatever an earlier test left active.
    with translation.override("en"):
        yield


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def dan(db):
    return UserFactory(username="dan", role=Role.DEVELOPER)


@pytest.fixture
def dev_client(developer):
    return client_for(developer)


@pytest.fixture
def user_client(user):
    return client_for(user)


@pytest.fixture
def reviewer_client(reviewer):
    return client_for(reviewer)


def _store_slugs(response) -> list[str]:
    return [item["slug"] for item in response.json()["data"]["items"]]


def _non_builtin(response) -> list[str]:
    return [slug for slug in _store_slugs(response) if not slug.startswith("builtin-")]


# --- store --------------------------------------------------------------------------------


def test_store_list_is_public_and_carries_counters(api_client):
    agent = published_agent(slug="mailer", install_count=7, rating_count=2, rating_sum=9)
    Agent.objects.filter(pk=agent.pk).update(rating_avg="4.50")

    response = api_client.get(f"{API}/store/agents", {"sort_by": "popular"})

    body = response.json()
    assert response.status_code == 200
    assert (body["code"], body["data"]["total"]) == (0, BUILTINS + 1)
    item = body["data"]["items"][0]
    assert item["slug"] == "mailer"
    assert (item["install_count"], item["average_rating"], item["rating_count"]) == (7, 4.5, 2)
    assert item["current_version"] == "1.0.0"
    assert item["developer"]["display_name"] == agent.developer.display_name


def test_drafts_submissions_and_rejected_versions_never_reach_the_store(api_client, developer):
    AgentFactory(slug="draft-one", developer=developer)
    AgentVersionFactory(
        agent=AgentFactory(slug="submitted-one", developer=developer),
        status=AgentVersion.Status.SUBMITTED,
    )
    AgentVersionFactory(
        agent=AgentFactory(slug="rejected-one", developer=developer, status="published"),
        status=AgentVersion.Status.REJECTED,
    )
    archived = published_agent(slug="archived-one")
    Agent.objects.filter(pk=archived.pk).update(status=Agent.Status.ARCHIVED)

    response = api_client.get(f"{API}/store/agents")

    assert _non_builtin(response) == []
    for slug in ["draft-one", "submitted-one", "rejected-one", "archived-one"]:
        assert api_client.get(f"{API}/store/agents/{slug}").json()["code"] == 40401


def test_store_filters(api_client):
    parent = CategoryFactory(slug="work")
    child = CategoryFactory(slug="email", parent=parent)
    tagged = published_agent(slug="tagged", category=child)
    tagged.tags.add(Tag.objects.create(name="Mail", slug="mail"))
    published_agent(slug="rated", rating_avg="4.80")
    published_agent(slug="dialog-one", agent_type="dialog")

    def slugs(**params):
        return _non_builtin(api_client.get(f"{API}/store/agents", params))

    assert slugs(category="work") == ["tagged"]
    assert slugs(category=str(child.pk)) == ["tagged"]
    assert slugs(category="no-such-category") == []
    assert slugs(tag="mail") == ["tagged"]
    assert slugs(min_rating="4.5") == ["rated"]
    assert slugs(agent_type="dialog") == ["dialog-one"]


def test_store_search_and_sorting(api_client):
    published_agent(slug="zeta-translator", name="Zeta Translator", install_count=1)
    published_agent(slug="alpha-translator", name="Alpha Translator", install_count=50)

    by_name = api_client.get(f"{API}/store/agents", {"q": "translator", "sort_by": "name"})
    by_popularity = api_client.get(f"{API}/store/agents", {"q": "translator", "sort_by": "popular"})
    reversed_names = api_client.get(
        f"{API}/store/agents", {"q": "translator", "sort_by": "name", "sort_order": "desc"}
    )

    assert _store_slugs(by_name) == ["alpha-translator", "zeta-translator"]
    assert _store_slugs(by_popularity) == ["alpha-translator", "zeta-translator"]
    assert _store_slugs(reversed_names) == ["zeta-translator", "alpha-translator"]


@pytest.mark.parametrize(
    "params", [{"sort_by": "price"}, {"agent_type": "robot"}, {"min_rating": "abc"}]
)
def test_store_list_rejects_bad_parameters(api_client, params):
    response = api_client.get(f"{API}/store/agents", params)

    assert (response.status_code, response.json()["code"]) == (400, 40002)


@pytest.mark.parametrize("n", [1, 10])
def test_store_list_uses_a_constant_number_of_queries(api_client, django_assert_num_queries, n):
    category = CategoryFactory()
    tag = Tag.objects.create(name="T", slug="t")
    for _ in range(n):
        published_agent(category=category).tags.add(tag)

    # count, page (with the tag names)
    with django_assert_num_queries(2):
        response = api_client.get(f"{API}/store/agents", {"page_size": 50})
    assert response.json()["data"]["total"] == BUILTINS + n
    assert {tuple(item["tags"]) for item in response.json()["data"]["items"]} == {(), ("T",)}


@pytest.mark.integration
@pytest.mark.parametrize("n", [3, 12])
def test_store_search_is_one_statement(api_client, django_assert_num_queries, n):
    tag = Tag.objects.create(name="T", slug="t")
    for i in range(n):
        published_agent(name=f"Gizmo {i:02d}", install_count=i).tags.add(tag)

    # the page, with its count and the tag names
    with django_assert_num_queries(1):
        response = api_client.get(f"{API}/store/agents", {"q": "gizmo", "page_size": 5})
    data = response.json()["data"]
    assert (data["total"], data["pages"], len(data["items"])) == (n, -(-n // 5), min(n, 5))
    assert data["items"][0]["tags"] == ["T"]


@pytest.mark.integration
def test_store_search_page_past_the_end_is_not_found(api_client):
    published_agent(name="Gizmo")

    response = api_client.get(f"{API}/store/agents", {"q": "gizmo", "page": 2})

    assert response.status_code == 404


def test_store_detail_by_slug_or_id_with_versions_and_histogram(user_client, user):
    agent = published_agent(slug="helper", description="**Bold** <script>x()</script>")
    InstallFactory(user=user, agent=agent, seen_version=agent.current_version)
    RatingFactory(user=user, agent=agent, stars=5)

    by_slug = user_client.get(f"{API}/store/agents/helper").json()["data"]
    by_id = user_client.get(f"{API}/store/agents/{agent.pk}").json()["data"]

    assert by_slug == by_id
    assert by_slug["description_html"] == "<p><strong>Bold</strong> </p>"
    assert [v["version"] for v in by_slug["versions"]] == ["1.0.0"]
    assert by_slug["rating_histogram"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}
    assert (by_slug["is_installed"], by_slug["update_available"]) == (True, False)
    assert by_slug["my_rating"]["rating"] == 5


def test_install_and_uninstall(user_client, user):
    agent = published_agent(slug="helper")

    created = user_client.post(f"{API}/store/agents/helper/install")
    again = user_client.post(f"{API}/store/agents/helper/install")
    removed = user_client.delete(f"{API}/store/agents/helper/install")

    assert created.status_code == 201
    assert created.json()["data"]["agent"]["install_count"] == 1
    assert again.json()["code"] == 40905
    assert removed.json() == {"code": 0, "message": "success", "data": None}
    assert Agent.objects.get(pk=agent.pk).install_count == 0


def test_installing_an_unpublished_agent_is_not_found(user_client, developer):
    agent = AgentFactory(developer=developer)

    response = user_client.post(f"{API}/store/agents/{agent.pk}/install")

    assert (response.status_code, response.json()["code"]) == (404, 40401)


def test_install_needs_authentication(api_client):
    published_agent(slug="helper")

    assert api_client.post(f"{API}/store/agents/helper/install").json()["code"] == 40101


def test_rating_rules_through_the_api(user_client, user):
    agent = published_agent(slug="helper")
    url = f"{API}/store/agents/helper/ratings"

    not_installed = user_client.post(url, {"rating": 5, "text": "Nice"}, format="json")
    InstallFactory(user=user, agent=agent)
    bad = user_client.post(url, {"rating": 9}, format="json")
    unknown = user_client.post(url, {"rating": 4, "stars": 4}, format="json")
    first = user_client.post(url, {"rating": 4, "text": "Nice"}, format="json")
    twice = user_client.post(url, {"rating": 1}, format="json")
    edited = user_client.put(url, {"rating": 2}, format="json")

    assert not_installed.json()["code"] == 40301
    assert bad.json()["code"] == 40002
    assert unknown.json()["details"] == {"stars": ["Unknown field."]}
    assert first.status_code == 201
    assert twice.json()["code"] == 40901
    assert edited.json()["data"]["rating"] == 2
    agent.refresh_from_db()
    assert (agent.rating_count, float(agent.rating_avg)) == (1, 2.0)


@pytest.mark.parametrize("n", [1, 10])
def test_ratings_list_uses_a_constant_number_of_queries(api_client, django_assert_num_queries, n):
    agent = published_agent(slug="helper")
    for _ in range(n):
        RatingFactory(agent=agent)

    # agent, its tags, count, page (with users)
    with django_assert_num_queries(4):
        response = api_client.get(f"{API}/store/agents/helper/ratings")
    assert response.json()["data"]["total"] == n


def test_developer_replies_to_a_rating(developer, user, other_user):
    agent = published_agent(slug="helper", developer=developer)
    rating = RatingFactory(agent=agent, user=user)
    url = f"{API}/store/agents/helper/ratings/{rating.pk}/reply"

    refused = client_for(other_user).post(url, {"reply": "Hi"}, format="json")
    replied = client_for(developer).post(url, {"reply": "Thanks"}, format="json")

    assert refused.json()["code"] == 40301
    assert replied.json()["data"]["developer_reply"] == "Thanks"


def test_categories_tree(api_client):
    parent = CategoryFactory(slug="work", name="Work")
    CategoryFactory(slug="email", name="Email", parent=parent)
    published_agent(category=parent)

    data = api_client.get(f"{API}/store/categories").json()["data"]

    assert [(c["slug"], c["agent_count"]) for c in data] == [("work", 1)]
    assert [c["slug"] for c in data[0]["children"]] == ["email"]


@pytest.mark.parametrize("n", [1, 10])
def test_my_installs_use_a_constant_number_of_queries(user, django_assert_num_queries, n):
    client = client_for(user)
    for _ in range(n):
        InstallFactory(user=user, agent=published_agent())

    # count, installs with agents, tags
    with django_assert_num_queries(3):
        response = client.get(f"{API}/me/installs")
    assert response.json()["data"]["total"] == n


# --- developer ----------------------------------------------------------------------------


def test_plain_user_cannot_create_agents(user_client):
    response = user_client.post(f"{API}/agents", {"name": "Nope"}, format="json")

    assert (response.status_code, response.json()["code"]) == (403, 40301)


def test_developer_creates_and_edits_an_agent(dev_client):
    CategoryFactory(slug="work")

    created = dev_client.post(
        f"{API}/agents",
        {"name": "Mailer", "category": "work", "tags": ["email"], "agent_type": "dialog"},
        format="json",
    )
    agent_id = created.json()["data"]["id"]
    edited = dev_client.put(
        f"{API}/agents/{agent_id}", {"short_description": "Sends mail"}, format="json"
    )

    assert created.status_code == 201
    assert created.json()["data"]["category"]["slug"] == "work"
    assert created.json()["data"]["status"] == "draft"
    assert edited.json()["data"]["short_description"] == "Sends mail"
    assert edited.json()["data"]["role"] == "owner"


def test_another_developers_draft_is_not_found(dev_client, dan):
    theirs = AgentFactory(developer=dan)
    version = AgentVersionFactory(agent=theirs)

    for method, url in [
        ("get", f"{API}/agents/{theirs.pk}"),
        ("put", f"{API}/agents/{theirs.pk}"),
        ("delete", f"{API}/agents/{theirs.pk}"),
        ("get", f"{API}/agents/{theirs.pk}/versions"),
        ("put", f"{API}/agents/{theirs.pk}/versions/{version.pk}"),
        ("post", f"{API}/agents/{theirs.pk}/versions/{version.pk}/submit"),
        ("post", f"{API}/agents/{theirs.pk}/duplicate"),
        ("get", f"{API}/agents/not-a-uuid"),
    ]:
        response = getattr(dev_client, method)(url, {}, format="json")
        assert (url, response.json()["code"]) == (url, 40401)


@pytest.mark.parametrize("n", [1, 10])
def test_developer_list_uses_a_constant_number_of_queries(developer, django_assert_num_queries, n):
    client = client_for(developer)
    for _ in range(n):
        AgentFactory(developer=developer)

    # count, page, tags
    with django_assert_num_queries(3):
        response = client.get(f"{API}/agents")
    assert response.json()["data"]["total"] == n


def test_agent_types(dev_client):
    data = dev_client.get(f"{API}/agents/types").json()["data"]

    assert [t["value"] for t in data] == [
        "react",
        "dialog",
        "agentic_rag",
        "plan_execute",
        "reflexion",
    ]


def test_version_lifecycle_through_the_api(
    dev_client, reviewer_client, developer, user, django_capture_on_commit_callbacks
):
    agent = services.agent_create(developer, data={"name": "Helper"})
    base = f"{API}/agents/{agent.pk}/versions"

    created = dev_client.post(
        base, {"version": "1.0.0", "changelog": "First", "config": default_config()}, format="json"
    )
    vid = created.json()["data"]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        submitted = dev_client.post(f"{base}/{vid}/submit", {}, format="json")
    frozen = dev_client.put(f"{base}/{vid}", {"changelog": "changed"}, format="json")
    queue = reviewer_client.get(f"{API}/reviews", {"status": "submitted"}).json()["data"]["items"]
    user_queue = client_for(user).get(f"{API}/reviews")
    dev_approve = dev_client.post(f"{API}/reviews/{vid}/approve", {}, format="json")
    approved = reviewer_client.post(f"{API}/reviews/{vid}/approve", {"note": "ok"}, format="json")

    assert created.status_code == 201
    assert submitted.json()["data"]["status"] == "submitted"
    assert submitted.json()["data"]["check_status"] == "pending"
    assert AgentVersion.objects.get(pk=vid).check_status == "passed"
    assert frozen.json()["code"] == 40901
    assert [(i["id"], i["version_id"], i["agent_id"]) for i in queue] == [(vid, vid, str(agent.pk))]
    assert queue[0]["diff_summary"]["is_first_version"] is True
    assert user_queue.json()["code"] == 40301
    assert dev_approve.json()["code"] == 40301
    assert approved.json()["data"]["status"] == "approved"
    assert client_for(user).get(f"{API}/store/agents/{agent.slug}").status_code == 200


def test_submitting_an_invalid_configuration_is_refused(
    dev_client, developer, dan, django_capture_on_commit_callbacks
):
    kb = KnowledgeBaseFactory(owner=dan)
    agent = services.agent_create(developer, data={"name": "Helper"})
    config = {**default_config(), "knowledge": {"knowledge_base_ids": [str(kb.pk)]}}
    version = services.agent_version_create(
        developer, agent=agent, version="1.0.0", changelog="x", config=config
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = dev_client.post(
            f"{API}/agents/{agent.pk}/versions/{version.pk}/submit", {}, format="json"
        )

    assert (response.status_code, response.json()["code"]) == (400, 40002)
    assert response.json()["details"]["config"][0]["path"] == "$.knowledge.knowledge_base_ids[0]"


def test_schema_errors_in_a_new_version_are_reported_with_paths(dev_client, developer):
    agent = services.agent_create(developer, data={"name": "Helper"})

    response = dev_client.post(
        f"{API}/agents/{agent.pk}/versions",
        {"version": "1.0.0", "config": {"agent_type": "react", "model": {"temperature": 9}}},
        format="json",
    )

    assert response.json()["code"] == 40002
    assert [p["path"] for p in response.json()["details"]["config"]] == ["$.model.temperature"]


def test_reject_needs_a_note(reviewer_client, developer, django_capture_on_commit_callbacks):
    agent = services.agent_create(developer, data={"name": "Helper"})
    version = services.agent_version_create(developer, agent=agent, version="1.0.0", changelog="x")
    with django_capture_on_commit_callbacks(execute=True):
        services.agent_version_submit(developer, version=version)

    missing = reviewer_client.post(f"{API}/reviews/{version.pk}/reject", {}, format="json")
    rejected = reviewer_client.post(
        f"{API}/reviews/{version.pk}/reject", {"note": "Too vague"}, format="json"
    )

    assert missing.json()["code"] == 40002
    assert rejected.json()["data"]["status"] == "rejected"
    assert rejected.json()["data"]["review_note"] == "Too vague"


@pytest.mark.parametrize("n", [1, 10])
def test_review_list_uses_a_constant_number_of_queries(reviewer, django_assert_num_queries, n):
    client = client_for(reviewer)
    for _ in range(n):
        AgentVersionFactory(agent=published_agent(), status=AgentVersion.Status.SUBMITTED)
    reviewer.has_perm("agents.review_agentversion")  # warm the permission cache

    # count, page (permissions were cached above)
    with django_assert_num_queries(2):
        response = client.get(f"{API}/reviews", {"status": "submitted"})
    assert response.json()["data"]["total"] == n


def test_duplicate_a_builtin_agent(dev_client):
    builtin = Agent.objects.get(slug="builtin-react")

    response = dev_client.post(f"{API}/agents/{builtin.pk}/duplicate", {}, format="json")

    data = response.json()["data"]
    assert response.status_code == 201
    assert (data["name"], data["status"], data["is_builtin"]) == (
        "ReAct Assistant (copy)",
        "draft",
        False,
    )
    versions = dev_client.get(f"{API}/agents/{data['id']}/versions").json()["data"]["items"]
    assert [v["version"] for v in versions] == ["0.1.0"]


def test_collaborators_through_the_api(dev_client, developer, dan):
    agent = services.agent_create(developer, data={"name": "Shared"})
    url = f"{API}/agents/{agent.pk}/collaborators"

    added = dev_client.post(url, {"user": "dan"}, format="json")
    dan_sees = client_for(dan).get(f"{API}/agents/{agent.pk}")
    dan_archives = client_for(dan).post(f"{API}/agents/{agent.pk}/archive")
    removed = dev_client.delete(f"{url}/{dan.pk}")

    assert [c["username"] for c in added.json()["data"]] == ["dan"]
    assert dan_sees.json()["data"]["role"] == "collaborator"
    assert dan_archives.json()["code"] == 40301
    assert removed.json()["data"] is None
    assert client_for(dan).get(f"{API}/agents/{agent.pk}").json()["code"] == 40401


# --- notifications ------------------------------------------------------------------------


def test_notifications_list_and_read(user, other_user):
    agent = published_agent()
    Install.objects.create(user=user, agent=agent)
    mine = Notification.objects.create(user=user, kind="agent_updated", agent=agent, message="m")
    theirs = Notification.objects.create(user=other_user, kind="agent_updated", message="x")
    client = client_for(user)

    listed = client.get(f"{API}/me/notifications").json()["data"]
    foreign = client.post(f"{API}/me/notifications/{theirs.pk}/read")
    read = client.post(f"{API}/me/notifications/{mine.pk}/read")
    unread = client.get(f"{API}/me/notifications", {"unread": "1"}).json()["data"]

    assert [n["id"] for n in listed["items"]] == [mine.pk]
    assert foreign.json()["code"] == 40401
    assert read.json()["data"]["is_read"] is True
    assert unread["total"] == 0


@pytest.mark.parametrize("n", [1, 10])
def test_notifications_use_a_constant_number_of_queries(user, django_assert_num_queries, n):
    client = client_for(user)
    agent = published_agent()
    for _ in range(n):
        Notification.objects.create(user=user, kind="agent_updated", agent=agent, message="m")

    with django_assert_num_queries(2):
        response = client.get(f"{API}/me/notifications")
    assert response.json()["data"]["total"] == n
