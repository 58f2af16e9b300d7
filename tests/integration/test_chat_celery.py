"""The chat WebSocket in production mode: PostgreSQL, Redis (channel layer, cache, broker)
and a real Celery worker executing the runs in other processes.

The consumer lives in this process (``WebsocketCommunicator`` on the real ASGI app); each
run is dispatched on commit to the broker, executed by a prefork child of the worker,
stored in PostgreSQL and published through channels-redis to the chat's group.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from accounts.services.api_keys import api_key_create
from agents.tests.factories import InstallFactory
from agentstore import dispatch
from chats import messaging
from chats.models import ChatMessage, Run
from chats.tests.runtime_helpers import agent_version, demo_model
from chats.tests.ws_helpers import Sockets, text_of

pytestmark = pytest.mark.integration

PROMPT = "Please explain how a dropped connection resumes"
# The worker flushes events every 40 ms (its own settings): words paced further apart
# than that travel one event each.
TOKEN_DELAY_MS = 60


@pytest.fixture
def app():
    from agentstore.asgi import application

    yield application
    dispatch.bind_server_loop(None)


@pytest.fixture
async def ws(app, celery_worker):
    sockets = Sockets(app)
    yield sockets
    await sockets.close_all()


@pytest.fixture
def version(user):
    llm = demo_model(extra_config={"token_delay_ms": TOKEN_DELAY_MS})
    version = agent_version(llm, agent_type="dialog")
    InstallFactory(user=user, agent=version.agent)
    return version


@pytest.fixture
def token(user):
    return api_key_create(user, name="ws")[1]


@pytest.fixture
def new_chat(user, version):
    def create():
        return messaging.chat_create(user, agent_id=version.agent_id)

    return database_sync_to_async(create)


@database_sync_to_async
def stored_answer(run_id: str) -> tuple[str, str, int]:
    run = Run.objects.get(pk=run_id)
    message = ChatMessage.objects.get(pk=run.assistant_message_id)
    return run.status, message.content, run.last_seq


async def test_a_message_is_answered_by_the_worker_and_streamed_to_the_socket(
    ws, new_chat, token, celery_worker
):
    chat = await new_chat()
    socket = await ws(chat, token)

    await socket.send(type="send_message", content="Hello worker")
    accepted = await socket.expect("MESSAGE_ACCEPTED")
    frames, _ = await socket.until_terminal()

    status, answer, last_seq = await stored_answer(accepted["run_id"])
    assert [f["seq"] for f in frames] == list(range(1, last_seq + 1))
    assert frames[0]["type"] == "RUN_STARTED"
    assert frames[-1]["type"] == "RUN_FINISHED"
    assert status == Run.Status.COMPLETED
    assert answer == text_of(frames)
    assert "You said: “Hello worker”" in answer
    assert "agentstore.run_execute" in celery_worker.log_text()
    assert "Traceback" not in celery_worker.log_text()


async def test_dropped_socket_resumes_from_a_worker_run_without_gaps_or_duplicates(
    ws, new_chat, token
):
    chat, other = await new_chat(), await new_chat()
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
    status, answer, last_seq = await stored_answer(run_id)
    assert reconnected.connected["active_runs"][0]["run_id"] == run_id
    assert [f["type"] for f in others] == ["RESUMED"]
    assert [f["seq"] for f in received] == list(range(1, last_seq + 1))
    assert len(received) > 20
    assert status == Run.Status.COMPLETED
    assert text_of(received) == text_of(uninterrupted)
    assert text_of(received).encode() == answer.encode()


async def test_two_tabs_see_a_worker_run(ws, new_chat, token):
    chat = await new_chat()
    first = await ws(chat, token)
    second = await ws(chat, token)

    await first.send(type="send_message", content="Hello tabs")
    await first.expect("MESSAGE_ACCEPTED")
    seen_by_first, _ = await first.until_terminal()
    seen_by_second, _ = await second.until_terminal()

    assert seen_by_second == seen_by_first


async def test_stop_reaches_the_worker_and_keeps_the_partial_answer(ws, new_chat, token):
    chat = await new_chat()
    socket = await ws(chat, token)
    await socket.send(type="send_message", content=PROMPT)
    accepted = await socket.expect("MESSAGE_ACCEPTED")

    streamed = await socket.events(6)
    await socket.send(type="stop", run_id=accepted["run_id"])
    rest, others = await socket.until_terminal()

    frames = streamed + rest
    status, answer, _ = await stored_answer(accepted["run_id"])
    assert others[0]["type"] == "STOP_ACCEPTED"
    assert frames[-1]["outcome"] == {"type": "cancelled"}
    assert status == Run.Status.CANCELLED
    assert answer == text_of(frames)
    assert 0 < len(answer) < 150
