"""The chat WebSocket end to end: the real ASGI application (origin check, token/session
auth, routing) driven by ``WebsocketCommunicator``; runs execute on embedded task threads
with the offline demo model, exactly as under ``make run``.

Runs on SQLite by default and on PostgreSQL + Redis (channels-redis, Redis cache) when
``DATABASE_URL``/``REDIS_URL`` are set.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.services.api_keys import api_key_create
from agents.tests.factories import InstallFactory
from agentstore import dispatch
from chats import consumers, messaging
from chats.models import Chat, ChatMessage, Run
from chats.tests.factories import ChatFactory, RunFactory
from chats.tests.runtime_helpers import agent_version, demo_model
from chats.tests.ws_helpers import ORIGIN, TERMINAL, Sockets, text_of

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Please explain how a dropped connection resumes"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _agentscope_imported():
    """Import AgentScope once up front, as a worker does, so no run pays for it mid-test."""
    from chats.runtime.builder import ensure_agentscope

    ensure_agentscope()


@pytest.fixture
def app():
    from agentstore.asgi import application

    yield application
    dispatch.bind_server_loop(None)


@pytest.fixture
def streaming(settings):
    """One event per streamed word: the demo model paces its words; the emitter flushes
    more often than that."""
    settings.RUN_EVENT_FLUSH_INTERVAL = 0.005
    return 40


def _version(user, delay_ms: int = 0):
    extra = {"token_delay_ms": delay_ms} if delay_ms else {}
    version = agent_version(demo_model(extra_config=extra), agent_type="dialog")
    InstallFactory(user=user, agent=version.agent)
    return version


@pytest.fixture
def version(user):
    return _version(user)


@pytest.fixture
def chat(user, version):
    return messaging.chat_create(user, agent_id=version.agent_id)


@pytest.fixture
def token(user):
    return api_key_create(user, name="ws")[1]


@pytest.fixture
def bob_token(other_user):
    return api_key_create(other_user, name="ws")[1]


@pytest.fixture
async def ws(app):
    """``await ws(chat, token)`` opens an authenticated socket and reads CONNECTED."""
    sockets = Sockets(app)
    yield sockets
    await sockets.close_all()


@database_sync_to_async
def reload(obj):
    obj.refresh_from_db()
    return obj


@database_sync_to_async
def messages_of(chat: Chat) -> list[tuple[str, str, str, Any]]:
    return list(
        ChatMessage.objects.filter(chat=chat)
        .order_by("created_at", "id")
        .values_list("role", "content", "status", "parent_id")
    )


# --- connecting -------------------------------------------------------------------------------


async def test_connect_says_connected_with_no_active_runs(ws, chat, token):
    socket = await ws(chat, token)

    assert socket.connected == {
        "type": "CONNECTED",
        "chat_id": str(chat.pk),
        "active_runs": [],
        "max_message_bytes": 65536,
    }


async def test_session_cookie_authenticates_the_socket(app, ws, chat, user):
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    socket = await ws(chat, "", headers=[ORIGIN, (b"cookie", cookie)])
    await socket.send(type="ping")

    assert (await socket.recv()) == {"type": "PONG"}


async def test_another_users_chat_closes_with_4404(app, chat, bob_token):
    comm = WebsocketCommunicator(app, f"/ws/chats/{chat.pk}/?token={bob_token}", headers=[ORIGIN])

    connected, _ = await comm.connect()
    closed = await comm.receive_output()

    assert connected is True
    assert closed == {"type": "websocket.close", "code": 4404}


async def test_deleted_chat_closes_with_4404(app, user, chat, token):
    await database_sync_to_async(messaging.chat_delete)(user, chat=chat)
    comm = WebsocketCommunicator(app, f"/ws/chats/{chat.pk}/?token={token}", headers=[ORIGIN])

    await comm.connect()

    assert (await comm.receive_output()) == {"type": "websocket.close", "code": 4404}


async def test_unauthenticated_socket_closes_with_4401(app, chat):
    comm = WebsocketCommunicator(app, f"/ws/chats/{chat.pk}/", headers=[ORIGIN])

    await comm.connect()

    assert (await comm.receive_output()) == {"type": "websocket.close", "code": 4401}


async def test_foreign_origin_is_refused(app, chat, token):
    comm = WebsocketCommunicator(
        app, f"/ws/chats/{chat.pk}/?token={token}", headers=[(b"origin", b"http://evil.example")]
    )

    connected, _ = await comm.connect()

    assert connected is False


async def test_a_header_token_client_without_origin_is_let_in(app, chat, token):
    comm = WebsocketCommunicator(
        app, f"/ws/chats/{chat.pk}/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )

    connected, _ = await comm.connect()

    assert connected is True
    await comm.disconnect()


async def test_a_query_token_without_origin_is_refused(app, chat, token):
    # Only a header token proves a non-browser client; a browser page could add ?token=.
    comm = WebsocketCommunicator(app, f"/ws/chats/{chat.pk}/?token={token}")

    connected, _ = await comm.connect()

    assert connected is False


# --- sending ----------------------------------------------------------------------------------


async def test_send_message_streams_events_in_order_and_stores_the_answer(ws, chat, token):
    socket = await ws(chat, token)

    await socket.send(type="send_message", content="Hello there", id="c1")
    accepted = await socket.expect("MESSAGE_ACCEPTED")
    frames, others = await socket.until_terminal()

    run = await reload(Run(pk=accepted["run_id"]))
    kinds = [f["type"] for f in frames]
    assert accepted["id"] == "c1"
    assert accepted["action"] == "send"
    assert accepted["parent_id"] is None
    assert accepted["title"] == "Hello there"
    assert others == []
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert {f["run_id"] for f in frames} == {accepted["run_id"]}
    assert {f["runId"] for f in frames} == {accepted["run_id"]}
    assert kinds[0] == "RUN_STARTED"
    assert sum(kind in TERMINAL for kind in kinds) == 1
    assert frames[-1]["type"] == "RUN_FINISHED"
    assert frames[-1]["outcome"] == {"type": "success"}
    assert run.status == Run.Status.COMPLETED
    assert await messages_of(chat) == [
        ("user", "Hello there", "sent", None),
        ("assistant", text_of(frames), "sent", uuid.UUID(accepted["user_message_id"])),
    ]
    assert "You said: “Hello there”" in text_of(frames)


async def test_two_sockets_on_one_chat_both_see_the_stream(ws, chat, token):
    first = await ws(chat, token)
    second = await ws(chat, token)

    await first.send(type="send_message", content="Hello both")
    await first.expect("MESSAGE_ACCEPTED")
    seen_by_first, _ = await first.until_terminal()
    seen_by_second, _ = await second.until_terminal()

    assert [f["seq"] for f in seen_by_second] == list(range(1, len(seen_by_first) + 1))
    assert seen_by_second == seen_by_first


async def test_the_socket_receives_runs_started_over_rest(ws, chat, token, user):
    socket = await ws(chat, token)

    turn = await database_sync_to_async(messaging.chat_message_post)(
        user, chat=chat, content="from the API"
    )
    frames, _ = await socket.until_terminal()

    assert frames[0]["type"] == "RUN_STARTED"
    assert frames[0]["run_id"] == str(turn.run.pk)


# --- the drop test ----------------------------------------------------------------------------


async def test_dropped_socket_resumes_without_gaps_or_duplicates(ws, user, token, streaming):
    version = await database_sync_to_async(_version)(user, streaming)
    chat = await database_sync_to_async(messaging.chat_create)(user, agent_id=version.agent_id)
    other = await database_sync_to_async(messaging.chat_create)(user, agent_id=version.agent_id)

    socket = await ws(chat, token)
    await socket.send(type="send_message", content=PROMPT)
    run_id = (await socket.expect("MESSAGE_ACCEPTED"))["run_id"]
    before_drop = await socket.events(10)
    await socket.close()
    reconnected = await ws(chat, token)
    await reconnected.send(type="resume", run_id=run_id, last_seq=10)
    after_drop, others = await reconnected.until_terminal()

    uninterrupted_socket = await ws(other, token)
    await uninterrupted_socket.send(type="send_message", content=PROMPT)
    await uninterrupted_socket.expect("MESSAGE_ACCEPTED")
    uninterrupted, _ = await uninterrupted_socket.until_terminal()

    received = before_drop + after_drop
    run = await reload(Run(pk=run_id))
    answer = await database_sync_to_async(
        lambda: ChatMessage.objects.get(pk=run.assistant_message_id).content
    )()
    assert reconnected.connected["active_runs"][0]["run_id"] == run_id
    assert [f["seq"] for f in received] == list(range(1, len(received) + 1))
    assert len(received) == run.last_seq
    assert len(received) > 20
    assert text_of(received) == text_of(uninterrupted)
    assert text_of(received).encode() == answer.encode()
    assert [f["type"] for f in others] == ["RESUMED"]


async def test_resume_of_a_finished_run_replays_everything_then_says_resumed(ws, chat, token):
    socket = await ws(chat, token)
    await socket.send(type="send_message", content="Hello")
    run_id = (await socket.expect("MESSAGE_ACCEPTED"))["run_id"]
    live, _ = await socket.until_terminal()
    later = await ws(chat, token)

    await later.send(type="resume", runId=run_id, lastSeq=2, id=7)
    replayed, _ = await later.until_terminal()
    resumed = await later.expect("RESUMED")

    assert replayed == live[2:]
    assert resumed == {
        "type": "RESUMED",
        "run_id": run_id,
        "last_seq": len(live),
        "status": "completed",
        "id": 7,
    }


async def test_resume_twice_on_one_socket_sends_nothing_twice(ws, chat, token):
    socket = await ws(chat, token)
    await socket.send(type="send_message", content="Hello")
    run_id = (await socket.expect("MESSAGE_ACCEPTED"))["run_id"]
    live, _ = await socket.until_terminal()

    await socket.send(type="resume", run_id=run_id, last_seq=0)
    resumed = await socket.expect("RESUMED")

    assert resumed["last_seq"] == len(live)


async def test_resume_of_another_users_run_is_refused(ws, user, other_user, chat, token, bob_token):
    socket = await ws(chat, token)
    await socket.send(type="send_message", content="secret question")
    run_id = (await socket.expect("MESSAGE_ACCEPTED"))["run_id"]
    await socket.until_terminal()
    bob_version = await database_sync_to_async(_version)(other_user)
    bob_chat = await database_sync_to_async(messaging.chat_create)(
        other_user, agent_id=bob_version.agent_id
    )
    bob = await ws(bob_chat, bob_token)

    await bob.send(type="resume", run_id=run_id, last_seq=0)
    error = await bob.recv()
    await bob.send(type="ping")

    assert error == {
        "type": "ERROR",
        "code": 40401,
        "message": "This run is not part of the chat.",
    }
    assert (await bob.recv()) == {"type": "PONG"}


async def test_resume_of_a_run_of_another_chat_of_the_same_user_is_refused(
    ws, user, version, chat, token
):
    elsewhere = await database_sync_to_async(messaging.chat_create)(user, agent_id=version.agent_id)
    first = await ws(elsewhere, token)
    await first.send(type="send_message", content="Hi")
    run_id = (await first.expect("MESSAGE_ACCEPTED"))["run_id"]
    await first.until_terminal()
    socket = await ws(chat, token)

    await socket.send(type="resume", run_id=run_id, last_seq=0)

    assert (await socket.recv())["code"] == 40401


# --- stop, regenerate, edit -------------------------------------------------------------------


async def test_stop_ends_the_run_cancelled_and_keeps_the_partial_text(ws, user, token, settings):
    settings.RUN_EVENT_FLUSH_INTERVAL = 0.005
    version = await database_sync_to_async(_version)(user, 60)
    chat = await database_sync_to_async(messaging.chat_create)(user, agent_id=version.agent_id)
    socket = await ws(chat, token)
    await socket.send(type="send_message", content=PROMPT)
    accepted = await socket.expect("MESSAGE_ACCEPTED")

    streamed = await socket.events(6)
    await socket.send(type="stop", run_id=accepted["run_id"])
    rest, others = await socket.until_terminal()

    frames = streamed + rest
    answer = await database_sync_to_async(ChatMessage.objects.get)(
        pk=accepted["assistant_message_id"]
    )
    run = await reload(Run(pk=accepted["run_id"]))
    assert others[0]["type"] == "STOP_ACCEPTED"
    assert others[0]["run_id"] == accepted["run_id"]
    assert frames[-1]["type"] == "RUN_FINISHED"
    assert frames[-1]["outcome"] == {"type": "cancelled"}
    assert run.status == Run.Status.CANCELLED
    assert answer.content == text_of(frames)
    assert 0 < len(answer.content) < 150
    assert answer.metadata["cancelled"] is True


async def test_stop_of_another_users_run_is_an_error(ws, other_user, chat, token, bob_token):
    run = await database_sync_to_async(RunFactory)(user=other_user, status=Run.Status.RUNNING)
    socket = await ws(chat, token)

    await socket.send(type="stop", run_id=str(run.pk))
    error = await socket.recv()

    assert error["type"] == "ERROR"
    assert error["code"] == 40401
    assert (await reload(run)).status == Run.Status.RUNNING


async def test_regenerate_adds_an_answer_beside_the_first_and_switches_to_it(ws, chat, token):
    socket = await ws(chat, token)
    await socket.send(type="send_message", content="Hello")
    first = await socket.expect("MESSAGE_ACCEPTED")
    await socket.until_terminal()

    await socket.send(type="regenerate", message_id=first["assistant_message_id"])
    again = await socket.expect("MESSAGE_ACCEPTED")
    frames, _ = await socket.until_terminal()

    page = await database_sync_to_async(_branch)(chat)
    assert again["action"] == "regenerate"
    assert again["user_message_id"] == first["user_message_id"]
    assert again["assistant_message_id"] != first["assistant_message_id"]
    assert frames[-1]["type"] == "RUN_FINISHED"
    assert page == [
        (first["user_message_id"], 1, 1),
        (again["assistant_message_id"], 2, 2),
    ]


async def test_edit_message_creates_a_sibling_branch(ws, chat, token):
    socket = await ws(chat, token)
    await socket.send(type="send_message", content="Hello")
    first = await socket.expect("MESSAGE_ACCEPTED")
    await socket.until_terminal()

    await socket.send(type="edit_message", message_id=first["user_message_id"], content="Bonjour")
    edited = await socket.expect("MESSAGE_ACCEPTED")
    frames, _ = await socket.until_terminal()

    page = await database_sync_to_async(_branch)(chat)
    assert edited["action"] == "edit"
    assert edited["parent_id"] is None
    assert "You said: “Bonjour”" in text_of(frames)
    assert page == [(edited["user_message_id"], 2, 2), (edited["assistant_message_id"], 1, 1)]


def _branch(chat: Chat) -> list[tuple[str, int, int]]:
    from chats.chat_selectors import branch_page

    chat.refresh_from_db()
    page = branch_page(chat)
    return [
        (str(m.pk), page.sibling_info(m)["index"], page.sibling_info(m)["count"])
        for m in page.messages
    ]


# --- bad input ----------------------------------------------------------------------------------


BAD_FRAMES = [
    ("{not json", 40001, "The frame is not valid JSON."),
    ("[1, 2]", 40001, "Send a JSON object with a 'type'."),
    (
        '{"type": "dance"}',
        40001,
        'Unknown message type "dance"; expected one of: send_message, regenerate, '
        "edit_message, stop, resume, ping.",
    ),
    ('{"type": "send_message"}', 40002, "content: This field is required."),
    ('{"type": "send_message", "content": "  "}', 40002, "content: Write a message first."),
    ('{"type": "send_message", "content": 5}', 40002, "content: Must be a string."),
    ('{"type": "send_message", "content": "hi", "colour": "red"}', 40002, "colour: Unknown field."),
    (
        '{"type": "resume", "run_id": "x", "last_seq": -1}',
        40002,
        "last_seq: Must be a whole number, 0 or more.",
    ),
    (
        '{"type": "resume", "run_id": "x", "last_seq": true}',
        40002,
        "last_seq: Must be a whole number, 0 or more.",
    ),
    ('{"type": "stop", "run_id": "not-a-uuid"}', 40401, "This run is not part of the chat."),
    (
        '{"type": "regenerate", "message_id": "00000000-0000-0000-0000-000000000000"}',
        40401,
        "This message is not part of the chat.",
    ),
]


async def test_every_bad_frame_gets_an_error_and_the_socket_stays_usable(ws, chat, token):
    # One socket takes every bad frame in turn: each is answered and the next still works.
    socket = await ws(chat, token)
    answers = []

    for frame, _code, _message in BAD_FRAMES:
        await socket.comm.send_to(text_data=frame)
        error = await socket.recv()
        await socket.send(type="ping", id="after")
        answers.append((error["type"], error["code"], error["message"], await socket.recv()))

    assert answers == [
        ("ERROR", code, message, {"type": "PONG", "id": "after"})
        for _frame, code, message in BAD_FRAMES
    ]
    assert await messages_of(chat) == []


async def test_binary_frames_get_an_error(ws, chat, token):
    socket = await ws(chat, token)

    await socket.comm.send_to(bytes_data=b"\x00\x01")

    assert (await socket.recv()) == {
        "type": "ERROR",
        "code": 40001,
        "message": "Send JSON text frames, not binary ones.",
    }


async def test_oversized_frames_get_an_error(ws, chat, token, settings):
    settings.WS_MAX_MESSAGE_BYTES = 100
    socket = await ws(chat, token)

    await socket.send(type="send_message", content="é" * 60)
    error = await socket.recv()
    await socket.send(type="ping")

    assert error == {
        "type": "ERROR",
        "code": 41301,
        "message": "The message is larger than 100 bytes.",
        "details": {"max_bytes": 100},
    }
    assert (await socket.recv()) == {"type": "PONG"}
    assert await messages_of(chat) == []


async def test_editing_an_answer_is_an_error(ws, chat, token):
    socket = await ws(chat, token)
    await socket.send(type="send_message", content="Hello")
    first = await socket.expect("MESSAGE_ACCEPTED")
    await socket.until_terminal()

    await socket.send(
        type="edit_message", message_id=first["assistant_message_id"], content="rewritten"
    )

    assert (await socket.recv()) == {
        "type": "ERROR",
        "code": 40002,
        "message": "message_id: Only your own messages can be edited.",
        "details": {"message_id": ["Only your own messages can be edited."]},
    }


async def test_archived_chat_refuses_messages(ws, user, chat, token):
    socket = await ws(chat, token)
    await database_sync_to_async(messaging.chat_update)(user, chat=chat, status="archived")

    await socket.send(type="send_message", content="Hello?")

    assert (await socket.recv()) == {
        "type": "ERROR",
        "code": 40901,
        "message": "This chat is archived; restore it to send messages.",
    }
    assert await messages_of(chat) == []


async def test_deleted_chat_refuses_messages_on_an_open_socket(ws, user, chat, token):
    socket = await ws(chat, token)
    await database_sync_to_async(messaging.chat_delete)(user, chat=chat)

    await socket.send(type="send_message", content="Hello?")

    assert (await socket.recv())["code"] == 40401


# --- limits -------------------------------------------------------------------------------------


async def test_messages_per_minute_limit_answers_with_retry_after(ws, chat, token, settings):
    settings.CHAT_MESSAGES_PER_MINUTE = 1
    socket = await ws(chat, token)
    await socket.send(type="send_message", content="one")
    await socket.expect("MESSAGE_ACCEPTED")
    await socket.until_terminal()

    await socket.send(type="send_message", content="two")
    error = await socket.recv()

    assert error["code"] == 42901
    assert 1 <= error["retry_after"] <= 60
    assert error["details"] == {"retry_after": error["retry_after"], "limit": 1}
    assert len(await messages_of(chat)) == 2


async def test_concurrent_runs_limit_answers_with_retry_after(ws, user, chat, token, settings):
    settings.MAX_CONCURRENT_RUNS_PER_USER = 1
    await database_sync_to_async(RunFactory)(user=user, status=Run.Status.RUNNING)
    socket = await ws(chat, token)

    await socket.send(type="send_message", content="Hello")
    error = await socket.recv()

    assert error["code"] == 42901
    assert error["retry_after"] == 5
    assert await messages_of(chat) == []


# --- threads ------------------------------------------------------------------------------------


async def test_a_slow_socket_does_not_hold_up_another(app, ws, user, version, token, monkeypatch):
    slow_chat = await database_sync_to_async(ChatFactory)(user=user, agent_version=version)
    fast_chat = await database_sync_to_async(ChatFactory)(user=user, agent_version=version)
    original = consumers.ChatConsumer._load_chat

    def load_chat(self):
        if self.chat_id == str(slow_chat.pk):
            time.sleep(1.0)
        return original(self)

    monkeypatch.setattr(consumers.ChatConsumer, "_load_chat", load_chat)
    slow = WebsocketCommunicator(app, f"/ws/chats/{slow_chat.pk}/?token={token}", headers=[ORIGIN])
    slow_connect = asyncio.ensure_future(slow.connect(timeout=5))
    await asyncio.sleep(0.1)

    started = time.monotonic()
    fast = await ws(fast_chat, token)
    await fast.send(type="ping")
    await fast.expect("PONG")
    fast_seconds = time.monotonic() - started
    slow_done_meanwhile = slow_connect.done()

    assert (await slow_connect)[0] is True
    await slow.disconnect()
    assert fast_seconds < 0.5
    assert slow_done_meanwhile is False
