"""The chat pages of the store website and the portal's test chat (SPEC §5, §4.3)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents.models import AgentVersion
from agents.tests.factories import AgentVersionFactory, InstallFactory, published_agent
from chats.models import Chat
from chats.tests.factories import ChatFactory


@pytest.fixture
def agent(developer):
    return published_agent(developer=developer, name="Poet", version="1.0.0")


@pytest.fixture
def draft(agent, developer):
    return AgentVersionFactory(
        agent=agent, version="1.1.0", status=AgentVersion.Status.DRAFT, created_by=developer
    )


def _chat(user, agent, **fields) -> Chat:
    return ChatFactory(user=user, agent=agent, agent_version=agent.current_version, **fields)


def _strings(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="chat-strings" type="application/json">')
    body = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


@pytest.mark.parametrize("path", ["/chats/", "/chats/{chat}/", "/chats/new?agent={agent}"])
def test_chat_pages_need_a_login(client, user, agent, path):
    chat = _chat(user, agent)
    response = client.get(path.format(chat=chat.pk, agent=agent.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Chat.objects.count() == 1


def test_chat_list_shows_only_my_chats(client, user, other_user, agent):
    mine = _chat(user, agent, title="Alice plans a trip")
    _chat(other_user, agent, title="Bob's secret")
    client.force_login(user)
    response = client.get("/chats/")
    assert response.status_code == 200
    assert [c.pk for c in response.context["chats"]] == [mine.pk]
    assert "Alice plans a trip" in response.content.decode()
    assert "Bob&#x27;s secret" not in response.content.decode()


def test_chat_list_leaves_out_test_deleted_and_archived_chats(client, user, agent):
    active = _chat(user, agent, title="Active one")
    _chat(user, agent, title="Test one", is_test=True)
    _chat(user, agent, title="Deleted one", status=Chat.Status.DELETED)
    archived = _chat(user, agent, title="Archived one", status=Chat.Status.ARCHIVED)
    client.force_login(user)
    assert [c.pk for c in client.get("/chats/").context["chats"]] == [active.pk]
    response = client.get("/chats/?status=archived")
    assert [c.pk for c in response.context["chats"]] == [archived.pk]


def test_chat_list_search_matches_titles_and_agent_names(client, user, agent):
    other_agent = published_agent(name="Chef")
    trip = _chat(user, agent, title="Trip to Hangzhou")
    _chat(user, agent, title="Budget")
    soup = _chat(user, other_agent, title="Dinner")
    client.force_login(user)
    assert [c.pk for c in client.get("/chats/?q=hangzhou").context["chats"]] == [trip.pk]
    assert [c.pk for c in client.get("/chats/?q=chef").context["chats"]] == [soup.pk]


def test_chat_page_renders_the_component(client, user, agent):
    chat = _chat(user, agent, title="Poems")
    client.force_login(user)
    response = client.get(f"/chats/{chat.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert response.context["chat"] == chat
    assert f'data-chat-id="{chat.pk}"' in html
    assert f'data-ws="/ws/chats/{chat.pk}/"' in html
    assert f'data-api="/api/v1/chats/{chat.pk}"' in html
    assert f'href="/api/v1/chats/{chat.pk}/export?format=md" download' in html
    assert f'href="/api/v1/chats/{chat.pk}/export?format=json" download' in html
    assert '<span class="version-badge" data-chat-version' in html
    assert ">v1.0.0</span>" in html
    assert "data-upgrade" not in html
    assert 'src="/static/js/chat.js"' in html


def test_another_users_chat_page_is_404(client, user, other_user, agent):
    chat = _chat(other_user, agent)
    client.force_login(user)
    assert client.get(f"/chats/{chat.pk}/").status_code == 404


def test_a_deleted_chat_page_is_404(client, user, agent):
    chat = _chat(user, agent, status=Chat.Status.DELETED)
    client.force_login(user)
    assert client.get(f"/chats/{chat.pk}/").status_code == 404


def test_an_archived_chat_is_shown_read_only(client, user, agent):
    chat = _chat(user, agent, status=Chat.Status.ARCHIVED)
    client.force_login(user)
    html = client.get(f"/chats/{chat.pk}/").content.decode()
    assert "data-readonly" in html
    assert "data-composer" not in html
    assert "This chat is archived. Unarchive it to continue." in html


def test_upgrade_is_offered_when_the_agent_has_a_newer_live_version(client, user, agent):
    chat = _chat(user, agent)
    AgentVersion.objects.filter(agent=agent).update(is_current=False)
    newer = AgentVersionFactory(
        agent=agent, version="2.0.0", status=AgentVersion.Status.APPROVED, is_current=True
    )
    agent.current_version = newer
    agent.save(update_fields=["current_version"])
    client.force_login(user)
    response = client.get(f"/chats/{chat.pk}/")
    assert response.context["upgrade_to"] == newer
    assert "Upgrade to v2.0.0" in response.content.decode()


def test_new_chat_with_an_installed_agent_opens_it(client, user, agent):
    InstallFactory(user=user, agent=agent)
    client.force_login(user)
    response = client.get(f"/chats/new?agent={agent.pk}")
    chat = Chat.objects.get(user=user)
    assert response.status_code == 302
    assert response["Location"] == f"/chats/{chat.pk}/"
    assert chat.agent_version == agent.current_version
    assert chat.is_test is False


def test_new_chat_with_an_agent_not_installed_is_refused_with_a_message(client, user, agent):
    client.force_login(user)
    response = client.get(f"/chats/new?agent={agent.pk}", follow=True)
    assert response.redirect_chain == [("/chats/", 302)]
    assert [str(m) for m in response.context["messages"]] == ["Install this agent to chat with it."]
    assert Chat.objects.filter(user=user).count() == 0


def test_new_chat_menu_lists_installed_agents(client, user, agent):
    InstallFactory(user=user, agent=agent)
    published_agent(name="Not installed")
    client.force_login(user)
    response = client.get("/chats/")
    assert [i.agent.name for i in response.context["installed"]] == ["Poet"]
    assert f'href="/chats/new?agent={agent.pk}"' in response.content.decode()


def test_chat_strings_reach_the_script_translated(client, user, agent):
    user.language = "zh-hans"
    user.save(update_fields=["language"])
    chat = _chat(user, agent)
    client.force_login(user)
    strings = _strings(client.get(f"/chats/{chat.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    assert strings["Regenerate"] == "重新生成"
    assert strings["Reconnecting…"] == "正在重新连接…"
    assert all(value for value in strings.values())


# --- the portal's test chat -------------------------------------------------------------------


def _version_url(version) -> str:
    return reverse("portal:version", args=[version.agent_id, version.pk])


def test_draft_page_offers_a_test_chat_to_the_developer(client, developer, draft):
    client.force_login(developer)
    html = client.get(_version_url(draft)).content.decode()
    assert 'id="test-chat"' in html
    assert f'action="/chats/test/{draft.agent_id}/{draft.pk}/"' in html
    assert "Start a test chat" in html
    assert "data-chat-id" not in html


def test_developer_starts_a_test_chat_against_the_draft(client, developer, draft):
    client.force_login(developer)
    response = client.post(f"/chats/test/{draft.agent_id}/{draft.pk}/")
    chat = Chat.objects.get(user=developer)
    assert response.status_code == 302
    assert response["Location"] == _version_url(draft) + "#test-chat"
    assert (chat.is_test, chat.agent_version) == (True, draft)
    html = client.get(_version_url(draft)).content.decode()
    assert f'data-chat-id="{chat.pk}"' in html
    assert '<span class="test-badge">Test chat</span>' in html
    assert "New test chat" in html
    # A test chat stays out of the ordinary chat list.
    assert list(client.get("/chats/").context["chats"]) == []


def test_a_test_chat_is_visible_only_to_its_developer(client, developer, other_user, draft):
    collaborator = UserFactory(username="cora", role=Role.DEVELOPER)
    from agents.services import agent_add_collaborator

    agent_add_collaborator(developer, agent=draft.agent, user=collaborator)
    client.force_login(developer)
    client.post(f"/chats/test/{draft.agent_id}/{draft.pk}/")
    chat = Chat.objects.get(user=developer)

    client.force_login(collaborator)
    assert f'data-chat-id="{chat.pk}"' not in client.get(_version_url(draft)).content.decode()
    assert client.get(f"/chats/{chat.pk}/").status_code == 404
    client.force_login(other_user)
    assert client.get(f"/chats/{chat.pk}/").status_code == 404


@pytest.mark.parametrize("role", [Role.USER, Role.DEVELOPER])
def test_only_the_agents_developers_can_start_a_test_chat(client, role, draft):
    stranger = UserFactory(username="sam", role=role)
    client.force_login(stranger)
    response = client.post(f"/chats/test/{draft.agent_id}/{draft.pk}/")
    assert response.status_code == 404
    assert Chat.objects.count() == 0
