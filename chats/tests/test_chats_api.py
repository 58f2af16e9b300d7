"""The chats REST API: CRUD, the active branch with before_id pagination, sending,
regenerate/edit/branch, export downloads — always scoped to the chat's owner."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from agents.models import AgentVersion
from agents.tests.factories import AgentVersionFactory, InstallFactory
from chats import messaging
from chats.models import Chat, ChatMessage, Run
from chats.tests.factories import RunFactory
from chats.tests.runtime_helpers import agent_version, demo_model

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def alice(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def bob(other_user) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def version(user):
    version = agent_version(demo_model(), agent_type="dialog")
    InstallFactory(user=user, agent=version.agent)
    return version


@pytest.fixture
def chat(user, version):
    return messaging.chat_create(user, agent_id=version.agent_id)


@pytest.fixture
def send(alice, django_capture_on_commit_callbacks):
    """``send(chat, content)``: POST a message; its run executes inline on commit."""

    def post(chat: Chat, content: str, client: APIClient = alice, **body):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/api/v1/chats/{chat.pk}/messages", {"content": content, **body}, format="json"
            )
        return response

    return post


# --- chats --------------------------------------------------------------------------------------


def test_creating_a_chat_needs_only_the_agent_and_pins_its_version(alice, version):
    response = alice.post("/api/v1/chats", {"agent_id": str(version.agent_id)}, format="json")

    data = response.json()["data"]
    assert response.status_code == 201
    assert data["agent_version_id"] == str(version.pk)
    assert data["agent_version"] == "1.0.0"
    assert data["agent"]["id"] == str(version.agent_id)
    assert data["status"] == "active"
    assert data["is_test"] is False
    assert data["upgrade_available"] is False
    assert data["title"] == ""


def test_creating_a_chat_with_an_unknown_field_is_a_validation_error(alice, version):
    response = alice.post(
        "/api/v1/chats", {"agent_id": str(version.agent_id), "model": "gpt"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == 40002
    assert response.json()["details"] == {"model": ["Unknown field."]}


def test_creating_a_chat_with_an_agent_not_installed_is_forbidden(bob, version):
    response = bob.post("/api/v1/chats", {"agent_id": str(version.agent_id)}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == 40301


def test_the_session_limit_is_a_conflict(alice, version, settings):
    settings.MAX_SESSIONS_PER_USER = 1
    alice.post("/api/v1/chats", {"agent_id": str(version.agent_id)}, format="json")

    response = alice.post("/api/v1/chats", {"agent_id": str(version.agent_id)}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == 40901


def test_the_list_shows_only_my_open_chats_with_constant_queries(
    user, other_user, version, alice, django_assert_num_queries
):
    mine = [
        messaging.chat_create(user, agent_id=version.agent_id, title=f"Mine {n}") for n in range(3)
    ]
    gone = messaging.chat_create(user, agent_id=version.agent_id, title="Gone")
    messaging.chat_delete(user, chat=gone)
    InstallFactory(user=other_user, agent=version.agent)
    messaging.chat_create(other_user, agent_id=version.agent_id, title="Bob's")

    with django_assert_num_queries(2):
        response = alice.get("/api/v1/chats")

    body = response.json()["data"]
    assert body["total"] == 3
    assert [item["title"] for item in body["items"]] == [c.title for c in reversed(mine)]
    assert set(body["items"][0]) == {
        "id",
        "title",
        "status",
        "is_test",
        "agent_id",
        "agent",
        "agent_version_id",
        "agent_version",
        "upgrade_available",
        "message_count",
        "last_message_at",
        "created_at",
        "updated_at",
    }


def test_the_list_searches_and_filters(user, version, alice):
    messaging.chat_create(user, agent_id=version.agent_id, title="Kyoto trip")
    taxes = messaging.chat_create(user, agent_id=version.agent_id, title="Taxes 2026")
    messaging.chat_update(user, chat=taxes, status="archived")

    found = alice.get("/api/v1/chats", {"q": "kyoto"}).json()["data"]["items"]
    archived = alice.get("/api/v1/chats", {"status": "archived"}).json()["data"]["items"]
    by_title = alice.get("/api/v1/chats", {"sort_by": "title", "sort_order": "asc"}).json()

    assert [c["title"] for c in found] == ["Kyoto trip"]
    assert [c["title"] for c in archived] == ["Taxes 2026"]
    assert [c["title"] for c in by_title["data"]["items"]] == ["Kyoto trip", "Taxes 2026"]


@pytest.mark.parametrize("method", ["put", "patch"])
def test_renaming_and_archiving(alice, chat, method):
    response = getattr(alice, method)(
        f"/api/v1/chats/{chat.pk}", {"title": "Trip", "status": "archived"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["data"]["title"] == "Trip"
    assert response.json()["data"]["status"] == "archived"


def test_an_empty_update_is_a_validation_error(alice, chat):
    response = alice.patch(f"/api/v1/chats/{chat.pk}", {}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == 40002


def test_deleting_answers_null_and_the_chat_is_gone(alice, chat):
    response = alice.delete(f"/api/v1/chats/{chat.pk}")

    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "success", "data": None}
    assert alice.get(f"/api/v1/chats/{chat.pk}").status_code == 404
    assert Chat.objects.get(pk=chat.pk).status == Chat.Status.DELETED


def test_upgrade_moves_the_chat_to_the_latest_version(alice, chat, version):
    AgentVersion.objects.filter(pk=version.pk).update(is_current=False)
    newer = AgentVersionFactory(
        agent=version.agent,
        version="2.0.0",
        status=AgentVersion.Status.APPROVED,
        is_current=True,
    )
    version.agent.current_version = newer
    version.agent.save(update_fields=["current_version"])

    before = alice.get(f"/api/v1/chats/{chat.pk}").json()["data"]
    response = alice.post(f"/api/v1/chats/{chat.pk}/upgrade")
    again = alice.post(f"/api/v1/chats/{chat.pk}/upgrade")

    assert before["upgrade_available"] is True
    assert response.status_code == 200
    assert response.json()["data"]["agent_version_id"] == str(newer.pk)
    assert response.json()["data"]["upgrade_available"] is False
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("patch", "", {"title": "mine"}),
        ("delete", "", None),
        ("post", "/upgrade", None),
        ("get", "/messages", None),
        ("post", "/messages", {"content": "hi"}),
        ("post", "/branch", {"message_id": "00000000-0000-0000-0000-000000000000"}),
        ("get", "/export?format=md", None),
    ],
)
def test_another_users_chat_is_not_found(bob, chat, method, suffix, body):
    response = getattr(bob, method)(f"/api/v1/chats/{chat.pk}{suffix}", body, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == 40401
    assert Chat.objects.get(pk=chat.pk).status == Chat.Status.ACTIVE
    assert ChatMessage.objects.count() == 0


def test_chats_need_authentication(api_client):
    response = api_client.get("/api/v1/chats")

    assert response.status_code == 401
    assert response.json()["code"] == 40101


# --- messages -----------------------------------------------------------------------------------


def test_sending_returns_the_run_and_both_message_ids(alice, chat, send):
    response = send(chat, "Hello there")

    data = response.json()["data"]
    run = Run.objects.get(pk=data["run_id"])
    assert response.status_code == 202
    assert data["status"] == "pending"
    assert data["chat_id"] == str(chat.pk)
    assert data["parent_id"] is None
    assert data["agent_version_id"] == str(chat.agent_version_id)
    assert str(run.user_message_id) == data["user_message_id"]
    assert str(run.assistant_message_id) == data["assistant_message_id"]
    assert run.status == Run.Status.COMPLETED


def test_messages_are_the_active_branch_oldest_first_with_safe_html(alice, chat, send):
    send(chat, "Hello <script>alert(1)</script> **bold**")

    with_queries = alice.get(f"/api/v1/chats/{chat.pk}/messages")

    body = with_queries.json()["data"]
    question, answer = body["items"]
    assert body["has_more"] is False
    assert body["next_before_id"] is None
    assert body["total"] == 2
    assert body["leaf_id"] == answer["id"]
    assert question["role"] == "user"
    assert question["content_html"] == (
        "<p>Hello &lt;script&gt;alert(1)&lt;/script&gt; **bold**</p>"
    )
    assert answer["role"] == "assistant"
    assert answer["parent_id"] == question["id"]
    assert answer["status"] == "sent"
    assert answer["run_status"] == "completed"
    assert answer["agent_version"] == "1.0.0"
    assert answer["siblings"] == {"index": 1, "count": 1, "ids": [answer["id"]]}
    assert "<script" not in answer["content_html"]
    assert "<strong>bold</strong>" in answer["content_html"]


def test_messages_paginate_backwards_with_before_id_in_constant_queries(
    alice, chat, send, django_assert_num_queries
):
    for text in ["one", "two", "three"]:
        send(chat, text)

    with django_assert_num_queries(3):
        newest = alice.get(f"/api/v1/chats/{chat.pk}/messages", {"limit": 4}).json()["data"]
    older = alice.get(
        f"/api/v1/chats/{chat.pk}/messages",
        {"limit": 4, "before_id": newest["next_before_id"]},
    ).json()["data"]

    assert [m["content"] for m in newest["items"]][::2] == ["two", "three"]
    assert newest["has_more"] is True
    assert newest["next_before_id"] == newest["items"][0]["id"]
    assert [m["content"] for m in older["items"]][:1] == ["one"]
    assert len(older["items"]) == 2
    assert older["has_more"] is False


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"before_id": "nope"}, "before_id")],
)
def test_bad_pagination_parameters_are_validation_errors(alice, chat, params, field):
    response = alice.get(f"/api/v1/chats/{chat.pk}/messages", params)

    assert response.status_code == 400
    assert response.json()["code"] == 40002
    assert list(response.json()["details"]) == [field]


def test_an_archived_chat_refuses_new_messages(alice, user, chat, send):
    messaging.chat_update(user, chat=chat, status="archived")

    response = send(chat, "Hello?")

    assert response.status_code == 409
    assert response.json()["code"] == 40901
    assert response.json()["message"] == "This chat is archived; restore it to send messages."


def test_empty_content_is_a_validation_error(chat, send):
    response = send(chat, "  ")

    assert response.status_code == 400
    assert response.json()["details"] == {"content": ["Write a message first."]}


def test_the_concurrency_limit_answers_429_with_retry_after(user, chat, send, settings):
    settings.MAX_CONCURRENT_RUNS_PER_USER = 1
    RunFactory(user=user, status=Run.Status.PENDING)

    response = send(chat, "Hello")

    assert response.status_code == 429
    assert response.json()["code"] == 42901
    assert response.json()["details"]["retry_after"] == 5
    assert response["Retry-After"] == "5"


def test_regenerate_and_branch_switch(alice, chat, send, django_capture_on_commit_callbacks):
    first = send(chat, "Hello").json()["data"]

    with django_capture_on_commit_callbacks(execute=True):
        again = alice.post(
            f"/api/v1/chats/{chat.pk}/messages/{first['assistant_message_id']}/regenerate"
        )
    regenerated = alice.get(f"/api/v1/chats/{chat.pk}/messages").json()["data"]["items"]
    switched = alice.post(
        f"/api/v1/chats/{chat.pk}/branch",
        {"message_id": first["assistant_message_id"]},
        format="json",
    ).json()["data"]["items"]

    assert again.status_code == 202
    assert again.json()["data"]["user_message_id"] == first["user_message_id"]
    assert regenerated[1]["id"] == again.json()["data"]["assistant_message_id"]
    assert regenerated[1]["siblings"]["index"] == 2
    assert regenerated[1]["siblings"]["count"] == 2
    assert switched[1]["id"] == first["assistant_message_id"]
    assert switched[1]["siblings"]["index"] == 1


def test_edit_creates_a_sibling_message(alice, chat, send, django_capture_on_commit_callbacks):
    first = send(chat, "Hello").json()["data"]

    with django_capture_on_commit_callbacks(execute=True):
        edited = alice.post(
            f"/api/v1/chats/{chat.pk}/messages/{first['user_message_id']}/edit",
            {"content": "Bonjour"},
            format="json",
        )
    items = alice.get(f"/api/v1/chats/{chat.pk}/messages").json()["data"]["items"]

    assert edited.status_code == 202
    assert items[0]["content"] == "Bonjour"
    assert items[0]["siblings"] == {
        "index": 2,
        "count": 2,
        "ids": [first["user_message_id"], edited.json()["data"]["user_message_id"]],
    }


def test_editing_an_answer_is_a_validation_error(alice, chat, send):
    first = send(chat, "Hello").json()["data"]

    response = alice.post(
        f"/api/v1/chats/{chat.pk}/messages/{first['assistant_message_id']}/edit",
        {"content": "x"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["details"] == {"message_id": ["Only your own messages can be edited."]}


# --- export -------------------------------------------------------------------------------------


def test_markdown_export_is_a_download(alice, chat, send):
    send(chat, "Hello")

    response = alice.get(f"/api/v1/chats/{chat.pk}/export", {"format": "md"})

    text = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="hello-{str(chat.pk)[:8]}.md"'
    assert text.startswith("# Hello\n")
    assert "### You · " in text
    assert f"### {chat.agent.name} · version 1.0.0 · " in text


def test_json_export_is_a_download(alice, chat, send):
    send(chat, "Hello")

    response = alice.get(f"/api/v1/chats/{chat.pk}/export", {"format": "json"})

    document = json.loads(response.content)
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="hello-')
    assert [m["role"] for m in document["messages"]] == ["user", "assistant"]
    assert document["messages"][1]["agent_version"]["version"] == "1.0.0"


def test_an_unknown_export_format_is_a_validation_error(alice, chat):
    response = alice.get(f"/api/v1/chats/{chat.pk}/export", {"format": "pdf"})

    assert response.status_code == 400
    assert response.json()["code"] == 40002
