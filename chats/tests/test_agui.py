"""AG-UI over SSE (``POST /api/v1/agent/run``) against a real uvicorn server running the
ASGI application in embedded mode: the run executes on the server's loop and its events
stream back through the channel layer, as under ``make run``."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from httpx_sse import connect_sse

from accounts.models import AuditLog
from agentstore.errors import NotFound
from chats.api import agui
from chats.models import Chat, ChatMessage, Run
from chats.tests.interface_helpers import (  # noqa: F401 - fixtures
    api_key,
    demo_llm,
    install,
    server_fixture,
    store_agent,
    stream_db_connections_closed_fixture,
)

pytestmark = pytest.mark.usefixtures("transactional_db", "stream_db_connections_closed")

TERMINAL = {"RUN_FINISHED", "RUN_ERROR"}


def run_input(thread_id: str, text: str, *, snake: bool = False, **props: Any) -> dict[str, Any]:
    message = {"id": "m1", "role": "user", "content": text}
    if snake:
        return {
            "thread_id": thread_id,
            "run_id": "client-run",
            "messages": [message],
            "tools": [],
            "context": [],
            "state": {},
            "forwarded_props": props,
        }
    return {
        "threadId": thread_id,
        "runId": "client-run",
        "messages": [message],
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": props,
    }


def stream(server, body: dict[str, Any], key: str, *, on_event=None) -> list[dict[str, Any]]:
    """POST ``body`` and read the SSE stream to its end (``on_event`` sees each event)."""
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(timeout=30.0) as client,
        connect_sse(
            client, "POST", f"{server.url}/api/v1/agent/run", json=body, headers=headers
        ) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"] == "text/event-stream"
        events = []
        for sse in source.iter_sse():
            event = json.loads(sse.data)
            events.append(event)
            if on_event is not None:
                on_event(event)
        return events


def post(server, body: Any, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{server.url}/api/v1/agent/run", json=body, headers=headers, timeout=10.0)


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")


@pytest.fixture
def agent(developer):
    return store_agent(demo_llm(), slug="helper", developer=developer)


@pytest.mark.parametrize("snake", [False, True], ids=["camelCase", "snake_case"])
def test_sse_streams_the_run_in_order_and_ends_after_one_terminal_event(server, user, agent, snake):
    install(user, agent)
    thread_id = str(uuid.uuid4())

    events = stream(
        server,
        run_input(thread_id, "Hello agent", snake=snake, agent_id="helper"),
        api_key(user),
    )

    run = Run.objects.get(chat_id=thread_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "RUN_STARTED"
    assert events[0]["threadId"] == thread_id
    assert events[0]["runId"] == str(run.pk)
    assert [e["type"] for e in events].count("RUN_FINISHED") == 1
    assert events[-1]["type"] == "RUN_FINISHED"
    assert not any(e["type"] == "RUN_ERROR" for e in events)
    assert "You said: “Hello agent”" in text_of(events)
    assert run.status == Run.Status.COMPLETED
    assert text_of(events) == run.output


def test_new_thread_creates_a_chat_with_the_thread_id_for_the_user(server, user, agent):
    install(user, agent)
    thread_id = str(uuid.uuid4())

    stream(server, run_input(thread_id, "Hi", agentId=str(agent.pk)), api_key(user))

    chat = Chat.objects.get(pk=thread_id)
    assert (chat.user, chat.agent, chat.agent_version) == (user, agent, agent.current_version)
    assert list(chat.messages.order_by("created_at").values_list("role", flat=True)) == [
        "user",
        "assistant",
    ]


def test_the_same_thread_continues_its_chat_with_the_last_user_message(server, user, agent):
    install(user, agent)
    key = api_key(user)
    thread_id = "my-client-thread"
    stream(server, run_input(thread_id, "First question", agent_id="helper"), key)
    body = run_input(thread_id, "Second question")
    body["messages"] = [
        {"id": "m1", "role": "user", "content": "First question"},
        {"id": "m2", "role": "assistant", "content": "whatever the client kept"},
        {"id": "m3", "role": "user", "content": [{"type": "text", "text": "Second question"}]},
    ]

    events = stream(server, body, key)

    chat = Chat.objects.get(user=user)
    assert events[0]["threadId"] == str(chat.pk)
    assert "You said: “Second question”" in text_of(events)
    assert list(
        ChatMessage.objects.filter(chat=chat, role="user")
        .order_by("created_at")
        .values_list("content", flat=True)
    ) == ["First question", "Second question"]


@pytest.mark.parametrize(
    ("props", "code"),
    [
        ({"agent_id": "no-such-agent"}, 40401),
        ({"agent_id": str(uuid.uuid4())}, 40401),
        ({}, 40002),
    ],
    ids=["unknown-slug", "unknown-id", "no-agent"],
)
def test_a_new_thread_needs_a_known_agent(server, user, agent, props, code):
    install(user, agent)

    response = post(server, run_input(str(uuid.uuid4()), "Hi", **props), api_key(user))

    assert response.status_code == code // 100
    assert response.json()["code"] == code
    assert Chat.objects.count() == 0


def test_an_agent_not_installed_is_refused_with_the_envelope(server, user, agent):
    response = post(server, run_input(str(uuid.uuid4()), "Hi", agent_id="helper"), api_key(user))

    assert response.status_code == 403
    assert response.json() == {
        "code": 40301,
        "message": "Install this agent to chat with it.",
        "details": None,
    }


def test_another_users_thread_is_not_found(server, user, other_user, agent):
    install(user, agent)
    install(other_user, agent)
    thread_id = str(uuid.uuid4())
    stream(server, run_input(thread_id, "Mine", agent_id="helper"), api_key(user))

    response = post(server, run_input(thread_id, "Theirs", agent_id="helper"), api_key(other_user))

    assert response.status_code == 404
    assert response.json()["code"] == 40401
    assert Run.objects.filter(user=other_user).count() == 0


def test_a_thread_a_concurrent_request_just_created_is_continued(user, agent):
    install(user, agent)
    thread_id = uuid.uuid4()
    # The other request won the race for the same new thread.
    existing = Chat.objects.create(
        id=thread_id, user=user, agent=agent, agent_version=agent.current_version
    )

    with transaction.atomic():
        chat = agui.thread_chat_create(user, chat_id=thread_id, agent_id=agent.pk)

    assert chat == existing
    assert AuditLog.objects.filter(action="chat.create").count() == 0


def test_a_thread_id_another_user_just_took_is_not_found(user, other_user, agent):
    install(user, agent)
    thread_id = uuid.uuid4()
    Chat.objects.create(
        id=thread_id, user=other_user, agent=agent, agent_version=agent.current_version
    )

    with pytest.raises(NotFound):
        agui.thread_chat_create(user, chat_id=thread_id, agent_id=agent.pk)


def test_a_jwt_access_token_works_as_well_as_an_api_key(server, user, agent):
    from accounts.tokens import issue_access_token

    install(user, agent)
    token = issue_access_token(user, family=uuid.uuid4())

    events = stream(server, run_input(str(uuid.uuid4()), "Hi", agent_id="helper"), token)

    assert events[-1]["type"] == "RUN_FINISHED"
    assert Run.objects.get(pk=events[0]["runId"]).user == user


@pytest.mark.parametrize(
    ("key", "code"), [(None, 40101), ("sk-not-a-real-key", 40102)], ids=["none", "wrong"]
)
def test_without_valid_credentials_the_envelope_says_401(server, agent, key, code):
    response = post(server, run_input(str(uuid.uuid4()), "Hi", agent_id="helper"), key)

    assert response.status_code == 401
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", 40001),
        ({"threadId": "t", "runId": "r"}, 40002),
        (
            {
                "threadId": "t",
                "runId": "r",
                "messages": [{"id": "a", "role": "assistant", "content": "x"}],
            },
            40002,
        ),
    ],
    ids=["malformed", "no-messages", "no-user-message"],
)
def test_bad_input_is_answered_before_streaming(server, user, agent, body, code):
    install(user, agent)
    headers = {"Authorization": f"Bearer {api_key(user)}", "Content-Type": "application/json"}
    content = body if isinstance(body, str) else json.dumps(body)

    response = httpx.post(
        f"{server.url}/api/v1/agent/run", content=content, headers=headers, timeout=10.0
    )

    assert response.status_code == code // 100
    assert response.json()["code"] == code


def test_stop_ends_the_stream_with_a_cancelled_run(server, user, developer):
    slow = store_agent(demo_llm(token_delay_ms=100), slug="slow", developer=developer)
    install(user, slow)
    key = api_key(user)
    stopped: list[httpx.Response] = []

    def stop_at_first_token(event: dict[str, Any]) -> None:
        if event["type"] == "TEXT_MESSAGE_CONTENT" and not stopped:
            stopped.append(
                httpx.post(
                    f"{server.url}/api/v1/agent/run/{event['runId']}/stop",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=10.0,
                )
            )

    events = stream(
        server,
        run_input(str(uuid.uuid4()), "Tell me a long story", agent_id="slow"),
        key,
        on_event=stop_at_first_token,
    )

    assert stopped[0].status_code == 200
    assert stopped[0].json()["data"]["id"] == events[0]["runId"]
    assert events[-1]["type"] == "RUN_FINISHED"
    assert events[-1]["outcome"] == {"type": "cancelled"}
    assert Run.objects.get(pk=events[0]["runId"]).status == Run.Status.CANCELLED


def test_stop_of_another_users_run_is_not_found(server, user, other_user, agent):
    install(user, agent)
    events = stream(server, run_input(str(uuid.uuid4()), "Hi", agent_id="helper"), api_key(user))

    response = httpx.post(
        f"{server.url}/api/v1/agent/run/{events[0]['runId']}/stop",
        headers={"Authorization": f"Bearer {api_key(other_user)}"},
        timeout=10.0,
    )

    assert response.status_code == 404
    assert response.json()["code"] == 40401


# --- the shared follower (chats.streaming) --------------------------------------------------------


@pytest.fixture
def stored_run(user, agent):
    """A run with 5 stored events: RUN_STARTED, 3 text deltas, RUN_FINISHED."""
    from chats.models import RunEvent
    from chats.tests.factories import RunFactory

    run = RunFactory(user=user, agent_version=agent.current_version)
    payloads = [
        {"type": "RUN_STARTED", "threadId": str(run.pk), "runId": str(run.pk)},
        *({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": d} for d in "abc"),
        {"type": "RUN_FINISHED", "threadId": str(run.pk), "runId": str(run.pk)},
    ]
    for seq, payload in enumerate(payloads, start=1):
        RunEvent.objects.create(run=run, seq=seq, type=payload["type"], payload=payload)
    return run


async def test_the_cursor_drops_duplicates_and_fills_gaps_from_storage(stored_run):
    from chats import events, streaming

    cursor = streaming.RunCursor(stored_run.pk, after=1)
    live = events.run_event(stored_run.pk, 4, {"type": "TEXT_MESSAGE_CONTENT", "delta": "c"})

    delivered = await cursor.accept(live)
    again = await cursor.accept(live)
    older = await cursor.accept(events.run_event(stored_run.pk, 2, {"type": "X"}))

    assert [(e["seq"], e.get("delta")) for e in delivered] == [(2, "a"), (3, "b"), (4, "c")]
    assert (again, older, cursor.last_seq, cursor.finished) == ([], [], 4, False)


async def test_follow_run_reads_what_was_never_published_from_storage(stored_run):
    from chats import streaming

    followed = [
        event["seq"]
        async for event in streaming.follow_run(stored_run.pk, fresh=True, idle_poll=0.05)
    ]

    assert followed == [1, 2, 3, 4, 5]


async def test_follow_run_gives_up_after_its_deadline(user, agent):
    from chats import streaming
    from chats.tests.factories import RunFactory

    run = await sync_to_async(RunFactory)(user=user, agent_version=agent.current_version)

    with pytest.raises(streaming.FollowTimeout):
        async for _event in streaming.follow_run(run.pk, max_wait=0.2, idle_poll=0.05):
            pass


async def test_a_run_started_subscribed_is_heard_from_its_first_event(user, agent):
    """start_subscribed opens the subscription before the run can publish: events that
    exist only live (never stored here) still all arrive, in order."""
    from chats import events, streaming
    from chats.tests.factories import RunFactory

    loop = asyncio.get_running_loop()

    def start(*, run_id):
        RunFactory(id=run_id, user=user, agent_version=agent.current_version)
        kinds = ["RUN_STARTED", "TEXT_MESSAGE_CONTENT", "RUN_FINISHED"]
        for seq, kind in enumerate(kinds, start=1):
            event = events.run_event(run_id, seq, {"type": kind, "delta": "hi"})
            publishing = events.apublish(events.run_group(run_id), event)
            asyncio.run_coroutine_threadsafe(publishing, loop).result(5)
        return run_id

    run_id, subscription = await streaming.start_subscribed(start)
    followed = [
        (event["seq"], event["type"])
        async for event in streaming.follow_run(
            run_id, fresh=True, subscription=subscription, max_wait=3, idle_poll=5
        )
    ]

    assert followed == [(1, "RUN_STARTED"), (2, "TEXT_MESSAGE_CONTENT"), (3, "RUN_FINISHED")]
    assert subscription.closed


async def test_a_run_that_fails_to_start_leaves_no_subscription(user, agent, monkeypatch):
    from chats import streaming

    opened: list[streaming.Subscription] = []
    original = streaming.Subscription.open

    async def recording(self):
        opened.append(self)
        return await original(self)

    monkeypatch.setattr(streaming.Subscription, "open", recording)

    def start(*, run_id):
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await streaming.start_subscribed(start)
    assert len(opened) == 1
    assert opened[0].closed
