"""The OpenAI-compatible API driven by the official ``openai`` package, unchanged, against a
real uvicorn server (embedded mode: runs execute on the server's loop)."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from agents.models import Agent
from chats.models import Chat, ChatMessage, Run
from chats.tests.interface_helpers import (  # noqa: F401 - fixtures
    api_key,
    demo_llm,
    install,
    released_version,
    server_fixture,
    store_agent,
    stream_db_connections_closed_fixture,
)

pytestmark = pytest.mark.usefixtures("transactional_db", "stream_db_connections_closed")


@pytest.fixture
def agent(developer):
    return store_agent(demo_llm(), slug="helper", developer=developer)


@pytest.fixture
def key(user, agent):
    install(user, agent)
    return api_key(user)


def client(server, key: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, **kwargs)


def test_non_streaming_completion_answers_with_the_agent(server, user, agent, key):
    completion = client(server, key).chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "Hello there"}]
    )

    run = Run.objects.get(user=user)
    assert completion.object == "chat.completion"
    assert completion.id == "chatcmpl-" + run.pk.hex
    assert completion.model == "helper"
    assert completion.system_fingerprint == "helper@1.0.0"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == run.output
    assert "You said: “Hello there”" in run.output
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == run.usage["input_tokens"]
    assert completion.usage.completion_tokens == run.usage["output_tokens"]
    assert completion.usage.total_tokens == run.usage["total_tokens"]


def test_streaming_completion_sends_chunks_then_done(server, user, agent, key):
    chunks = list(
        client(server, key).chat.completions.create(
            model="helper",
            messages=[{"role": "user", "content": "Hello there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    run = Run.objects.get(user=user)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.id for c in chunks} == {"chatcmpl-" + run.pk.hex}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == run.output
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == run.usage["total_tokens"]
    assert {c.usage for c in chunks[:-1]} == {None}


def test_a_stream_is_subscribed_before_its_run_is_stored(server, user, agent, key, monkeypatch):
    """The run's events are subscribed to before the run is stored and dispatched, so the
    first ones reach the client live, not read back from storage after a late
    subscription (``streaming.start_subscribed``)."""
    from chats import messaging, streaming

    order: list[str] = []
    opening, posting = streaming.Subscription.open, messaging.chat_message_post

    async def opened(self):
        order.append("subscribed")
        return await opening(self)

    def posted(*args, **kwargs):
        order.append("stored")
        return posting(*args, **kwargs)

    monkeypatch.setattr(streaming.Subscription, "open", opened)
    monkeypatch.setattr(messaging, "chat_message_post", posted)
    for stream in (True, False):
        order.clear()
        answer = client(server, key).chat.completions.create(
            model="helper", messages=[{"role": "user", "content": "Hello"}], stream=stream
        )
        finish = list(answer)[-1].choices[0] if stream else answer.choices[0]
        assert finish.finish_reason == "stop"
        assert order == ["subscribed", "stored"]


def test_async_client_streams_and_completes(server, user, agent, key):
    async def ask() -> tuple[str, str]:
        async with openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key=key, max_retries=0
        ) as aclient:
            whole = await aclient.chat.completions.create(
                model="helper", messages=[{"role": "user", "content": "One"}]
            )
            stream = await aclient.chat.completions.create(
                model="helper", messages=[{"role": "user", "content": "Two"}], stream=True
            )
            pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return whole.choices[0].message.content, "".join(pieces)

    whole, streamed = asyncio.run(ask())

    assert "You said: “One”" in whole
    assert "You said: “Two”" in streamed
    assert Run.objects.filter(user=user, status=Run.Status.COMPLETED).count() == 2


def test_earlier_messages_become_the_history_of_a_fresh_archived_chat(server, user, agent, key):
    client(server, key).chat.completions.create(
        model="helper",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": [{"type": "text", "text": "And 3+3?"}]},
        ],
    )

    chat = Chat.objects.get(user=user)
    assert chat.status == Chat.Status.ARCHIVED
    assert chat.agent_version == agent.current_version
    messages = list(ChatMessage.objects.filter(chat=chat).order_by("created_at", "role"))
    path = []
    node = messages[-1] if messages[-1].role == "assistant" else messages[-2]
    while node is not None:
        path.append((node.role, node.content))
        node = node.parent
    path.reverse()
    assert path[:3] == [("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?")]
    assert path[3][0] == "assistant"
    assert "You said: “And 3+3?”" in path[3][1]


def test_a_chat_header_keeps_the_conversation_going(server, user, agent, key):
    api = client(server, key)
    first = api.chat.completions.with_raw_response.create(
        model="helper",
        messages=[{"role": "user", "content": "First"}],
        extra_headers={"X-AgentStore-Chat-Id": "new"},
    )
    chat_id = first.headers["X-AgentStore-Chat-Id"]

    second = api.chat.completions.with_raw_response.create(
        model="helper",
        messages=[{"role": "user", "content": "Second"}],
        extra_headers={"X-AgentStore-Chat-Id": chat_id},
    )

    chat = Chat.objects.get(pk=chat_id)
    assert second.headers["X-AgentStore-Chat-Id"] == chat_id
    assert chat.status == Chat.Status.ACTIVE
    assert list(
        chat.messages.filter(role="user").order_by("created_at").values_list("content", flat=True)
    ) == ["First", "Second"]
    assert "You said: “Second”" in second.parse().choices[0].message.content


def test_models_lists_only_my_installed_chat_agents(server, user, other_user, developer):
    llm = demo_llm()
    mine = store_agent(llm, slug="mine", developer=developer)
    theirs = store_agent(llm, slug="theirs", developer=developer)
    store_agent(llm, slug="nobodys", developer=developer)
    triggers = store_agent(llm, slug="cron-only", developer=developer, mode=Agent.Mode.TRIGGERS)
    install(user, mine)
    install(user, triggers)
    install(other_user, theirs)

    models = client(server, api_key(user)).models.list()

    assert [(m.id, m.object, m.owned_by) for m in models.data] == [("mine", "model", "dora")]
    assert models.data[0].created == int(mine.published_at.timestamp())


def test_a_model_can_be_retrieved_with_or_without_a_version(server, agent, key):
    api = client(server, key)

    assert api.models.retrieve("helper").id == "helper"
    assert api.models.retrieve("helper@1.0.0").id == "helper@1.0.0"
    with pytest.raises(openai.NotFoundError) as missing:
        api.models.retrieve("helper@9.9.9")
    assert missing.value.body["code"] == "model_not_found"


def test_slug_at_version_pins_that_approved_version(server, user, agent, key):
    old = agent.current_version
    new = released_version(agent, "2.0.0", current=True)
    api = client(server, key)

    pinned = api.chat.completions.create(
        model="helper@1.0.0", messages=[{"role": "user", "content": "Hi"}]
    )
    current = api.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "Hi"}]
    )

    runs = {run.pk.hex: run.agent_version for run in Run.objects.filter(user=user)}
    assert runs[pinned.id.removeprefix("chatcmpl-")] == old
    assert runs[current.id.removeprefix("chatcmpl-")] == new
    assert (pinned.system_fingerprint, current.system_fingerprint) == (
        "helper@1.0.0",
        "helper@2.0.0",
    )


@pytest.mark.parametrize("model", ["helper@9.9.9", "no-such-agent", "not-installed"])
def test_unknown_or_inaccessible_models_are_not_found(server, developer, key, model):
    store_agent(demo_llm(), slug="not-installed", developer=developer)

    with pytest.raises(openai.NotFoundError) as error:
        client(server, key).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi"}]
        )

    assert error.value.status_code == 404
    assert error.value.body == {
        "message": f"The model '{model}' does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert Run.objects.count() == 0


def test_a_wrong_key_is_an_openai_style_401(server, agent):
    with pytest.raises(openai.AuthenticationError) as error:
        client(server, "sk-wrong").chat.completions.create(
            model="helper", messages=[{"role": "user", "content": "Hi"}]
        )

    assert error.value.status_code == 401
    assert error.value.body == {
        "message": "Invalid API key.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


def test_no_key_is_an_openai_style_401(server):
    response = httpx.get(f"{server.url}/v1/models", timeout=10.0)

    assert response.status_code == 401
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "helper", "messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ({"model": "helper", "messages": [{"role": "assistant", "content": "x"}]}, "messages"),
        ({"model": "helper", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ],
    ids=["no-messages", "no-model", "no-user-message", "n"],
)
def test_invalid_requests_are_openai_style_400(server, key, body, param):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10.0,
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_failed_run_is_a_500_the_sdk_does_not_retry(server, user, developer):
    broken = store_agent(demo_llm(), slug="broken", developer=developer)
    llm = broken.current_version.config["model"]["llm_model_id"]
    from integrations.models import LLMModel

    LLMModel.objects.filter(pk=llm).update(is_active=False)
    install(user, broken)
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key(user), max_retries=2)

    with pytest.raises(openai.InternalServerError) as error:
        api.chat.completions.create(model="broken", messages=[{"role": "user", "content": "Hi"}])

    assert error.value.body["code"] == "model_inactive"
    assert Run.objects.filter(user=user).count() == 1
