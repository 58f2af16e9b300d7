"""Provider adapters through the fake server: streaming, retries, breaker, error flags."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from integrations.llm.base import (
    ProviderError,
    aclose_chat_model,
    build_chat_model,
    stream_chat,
    text_of,
)
from integrations.llm.resilience import CircuitBreaker
from integrations.tests.factories import LLMModelFactory, UserProviderKeyFactory
from tests.fakes.openai_server import Reply, ToolCall

pytestmark = pytest.mark.django_db

KEY = "sk-adapter-test-key-0099"
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


@pytest.fixture(autouse=True)
def _fast_resilience(settings):
    settings.LLM_RETRY_BASE_DELAY = 0.01
    settings.LLM_RETRY_MAX_DELAY = 0.05
    settings.LLM_MAX_RETRIES = 2
    settings.LLM_BREAKER_THRESHOLD = 5
    settings.LLM_BREAKER_COOLDOWN = 30


def _messages(text: str = "Hello?"):
    from agentscope.message import SystemMsg, UserMsg

    return [SystemMsg(name="system", content="Be brief."), UserMsg(name="user", content=text)]


async def _collect(chat_model, messages=None, tools=None):
    chunks = []
    try:
        async for chunk in stream_chat(chat_model, messages or _messages(), tools=tools):
            chunks.append(chunk)
    finally:
        await aclose_chat_model(chat_model)
    return chunks


def _run(chat_model, **kwargs):
    return asyncio.run(_collect(chat_model, **kwargs))


def _failure(chat_model, **kwargs) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        _run(chat_model, **kwargs)
    return info.value


def _openai(fake_llm, **fields):
    return LLMModelFactory(
        provider_type="openai", base_url=fake_llm.base_url, api_key=KEY, **fields
    )


# --- streaming ------------------------------------------------------------------------------


def test_openai_adapter_streams_text_deltas_and_usage(fake_llm, user):
    fake_llm.queue(Reply(tokens=["Hel", "lo ", "there"], prompt_tokens=11, completion_tokens=3))
    chat = build_chat_model(_openai(fake_llm), user=user)

    chunks = _run(chat)

    assert [text_of(c) for c in chunks[:-1]] == ["Hel", "lo ", "there"]
    assert (chunks[-1].is_last, text_of(chunks[-1])) == (True, "Hello there")
    assert (chunks[-1].usage.input_tokens, chunks[-1].usage.output_tokens) == (11, 3)
    body = fake_llm.chat_requests[0].body
    assert (body["stream"], body["stream_options"], body["model"]) == (
        True,
        {"include_usage": True},
        "fake-model",
    )


def test_the_request_carries_the_users_own_key(fake_llm, user, other_user):
    UserProviderKeyFactory(user=user, api_key="sk-alices-own-key")
    model = _openai(fake_llm)

    _run(build_chat_model(model, user=user))
    _run(build_chat_model(model, user=other_user))

    assert [r.bearer for r in fake_llm.chat_requests] == ["sk-alices-own-key", KEY]


def test_overrides_and_defaults_reach_the_request(fake_llm, user):
    model = _openai(fake_llm, default_temperature=0.3, max_tokens=77)

    _run(build_chat_model(model, user=user, temperature=0.9, params={"top_p": 0.5, "seed": 7}))

    body = fake_llm.chat_requests[0].body
    assert (body["temperature"], body["max_completion_tokens"], body["top_p"], body["seed"]) == (
        0.9,
        77,
        0.5,
        7,
    )


def test_tool_call_arguments_are_streamed_and_assembled(fake_llm, user):
    fake_llm.queue(Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="call_1")]))
    chat = build_chat_model(_openai(fake_llm), user=user)

    chunks = _run(chat, tools=[ADD_TOOL])

    final = chunks[-1].content
    assert [(b.type, b.id, b.name, b.input) for b in final] == [
        ("tool_call", "call_1", "add", '{"a": 2, "b": 3}')
    ]
    assert len(chunks) > 3  # the arguments arrived in pieces
    assert fake_llm.chat_requests[0].body["tools"][0]["function"]["name"] == "add"


def test_agentscope_agent_runs_a_tool_loop_through_the_adapter(fake_llm, user):
    from agentscope.agent import Agent, InjectionConfig, ModelConfig
    from agentscope.message import UserMsg
    from agentscope.permission import PermissionBehavior, PermissionDecision
    from agentscope.tool import FunctionTool, Toolkit

    async def add(a: int, b: int) -> str:
        """Add two numbers.

        Args:
            a: The first number.
            b: The second number.
        """
        return str(a + b)

    fake_llm.queue(
        Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3})]),
        Reply(text="The sum is 5."),
    )
    chat = build_chat_model(_openai(fake_llm), user=user)

    async def run():
        allow = PermissionDecision(behavior=PermissionBehavior.ALLOW, message="test")
        agent = Agent(
            name="helper",
            system_prompt="You add numbers.",
            model=chat,
            toolkit=Toolkit(tools=[FunctionTool(add, permission=allow)]),
            model_config=ModelConfig(max_retries=0),
            injection_config=InjectionConfig(inject_runtime_state=False),
        )
        events = []
        try:
            async for event in agent.reply_stream(
                UserMsg(name="user", content="add 2 and 3"), yield_final_msg=True
            ):
                events.append(event)
        finally:
            await aclose_chat_model(chat)
        return events

    events = asyncio.run(run())

    types = [str(getattr(e, "type", "")) for e in events[:-1]]
    assert types.count("MODEL_CALL_START") == 2
    assert "TOOL_RESULT_END" in types
    assert events[-1].get_text_content() == "The sum is 5."
    second_call = fake_llm.chat_requests[1].body["messages"]
    assert [m["role"] for m in second_call] == ["system", "user", "assistant", "tool"]
    assert second_call[-1]["content"] == "5"


@pytest.mark.parametrize(
    ("provider_type", "base", "extra_config", "path", "auth_header"),
    [
        ("custom", "{url}/gw/v1", {}, "/gw/v1/chat/completions", "authorization"),
        ("ollama", "{url}", {}, "/v1/chat/completions", "authorization"),
        (
            "dashscope",
            "{url}/compatible-mode/v1",
            {},
            "/compatible-mode/v1/chat/completions",
            "authorization",
        ),
        (
            "azure_openai",
            "{url}",
            {"api_version": "2024-06-01", "deployment": "prod-gpt"},
            "/openai/deployments/prod-gpt/chat/completions",
            "api-key",
        ),
        # The anthropic 2.x SDK sends API keys as a bearer token.
        ("anthropic", "{url}", {}, "/v1/messages", "authorization"),
    ],
)
def test_each_provider_type_streams_through_its_own_endpoint(
    fake_llm, user, provider_type, base, extra_config, path, auth_header
):
    fake_llm.queue(Reply(tokens=["Hi ", "from ", provider_type]))
    model = LLMModelFactory(
        provider_type=provider_type,
        base_url=base.format(url=fake_llm.url),
        api_key=KEY,
        extra_config=extra_config,
    )

    chunks = _run(build_chat_model(model, user=user))

    request = fake_llm.chat_requests[0]
    assert text_of(chunks[-1]) == f"Hi from {provider_type}"
    assert request.path == path
    assert KEY in request.headers[auth_header]


def test_azure_requests_carry_the_api_version(fake_llm, user):
    model = LLMModelFactory(
        provider_type="azure_openai",
        base_url=fake_llm.url,
        api_key=KEY,
        extra_config={"api_version": "2024-10-21"},
    )

    _run(build_chat_model(model, user=user))

    assert fake_llm.chat_requests[0].query == {"api-version": "2024-10-21"}


# --- retries and errors --------------------------------------------------------------------


def test_429_is_retried_honouring_retry_after(fake_llm, user):
    fake_llm.fail_next(1, status=429, retry_after="0.3")
    chat = build_chat_model(_openai(fake_llm), user=user)

    started = time.monotonic()
    chunks = _run(chat)
    elapsed = time.monotonic() - started

    requests = fake_llm.chat_requests
    assert text_of(chunks[-1]) == "Hello from the fake LLM server."
    assert len(requests) == 2
    assert requests[1].received_at - requests[0].received_at >= 0.3
    assert elapsed >= 0.3


def test_500s_are_retried_with_backoff_until_success(fake_llm, user):
    fake_llm.fail_next(2, status=500)
    chat = build_chat_model(_openai(fake_llm), user=user)

    chunks = _run(chat)

    assert (len(fake_llm.chat_requests), chunks[-1].is_last) == (3, True)


def test_exhausted_retries_raise_a_transient_error(fake_llm, user):
    fake_llm.fail_next(3, status=429)
    chat = build_chat_model(_openai(fake_llm), user=user)

    error = _failure(chat)

    assert (error.code, error.transient, error.status, str(error)) == (
        "rate_limited",
        True,
        429,
        "HTTP 429 from provider: rate limited, slow down",
    )
    assert len(fake_llm.chat_requests) == 3


def test_a_long_retry_after_is_not_waited_for(fake_llm, user, settings):
    settings.LLM_MAX_RETRY_AFTER = 1
    fake_llm.fail_next(1, status=429, retry_after="120")
    chat = build_chat_model(_openai(fake_llm), user=user)

    error = _failure(chat)

    assert (error.code, error.retry_after, len(fake_llm.chat_requests)) == ("rate_limited", 120, 1)


def test_invalid_key_is_permanent_and_never_echoed(fake_llm, user, caplog):
    caplog.set_level(logging.DEBUG)
    fake_llm.expected_key = "sk-something-else"
    chat = build_chat_model(_openai(fake_llm), user=user)

    error = _failure(chat)

    assert (error.code, error.transient, error.status) == ("auth_failed", False, 401)
    assert str(error) == "HTTP 401 from provider: invalid API key"
    assert KEY not in error.detail
    assert KEY not in repr(error)
    assert KEY not in caplog.text
    assert len(fake_llm.chat_requests) == 1


def test_a_stalled_provider_times_out_as_transient(fake_llm, user, settings):
    settings.LLM_READ_TIMEOUT = 0.3
    settings.LLM_MAX_RETRIES = 0
    fake_llm.queue(Reply(stall=True))
    chat = build_chat_model(_openai(fake_llm), user=user)

    error = _failure(chat)

    assert (error.code, error.transient, str(error)) == (
        "timeout",
        True,
        "The provider did not answer in time.",
    )


def test_a_stall_before_the_first_token_is_retried(fake_llm, user, settings):
    settings.LLM_READ_TIMEOUT = 0.3
    fake_llm.queue(Reply(stall_after_tokens=0))
    chat = build_chat_model(_openai(fake_llm), user=user)

    chunks = _run(chat)

    assert (len(fake_llm.chat_requests), text_of(chunks[-1])) == (
        2,
        "Hello from the fake LLM server.",
    )


def test_a_failure_after_the_first_token_is_not_retried(fake_llm, user):
    fake_llm.queue(Reply(tokens=["one ", "two ", "three"], malformed_after_tokens=2))
    chat = build_chat_model(_openai(fake_llm), user=user)
    seen: list[str] = []

    async def consume():
        try:
            async for chunk in stream_chat(chat, _messages()):
                seen.append(text_of(chunk))
        finally:
            await aclose_chat_model(chat)

    with pytest.raises(ProviderError) as info:
        asyncio.run(consume())

    assert (info.value.code, info.value.transient) == ("bad_response", False)
    assert seen == ["one ", "two "]
    assert len(fake_llm.chat_requests) == 1


def test_a_dropped_connection_mid_stream_is_a_transient_error(fake_llm, user):
    fake_llm.queue(Reply(tokens=["a ", "b ", "c"], disconnect_after_tokens=1))
    chat = build_chat_model(_openai(fake_llm), user=user)

    error = _failure(chat)

    assert (error.code, error.transient, len(fake_llm.chat_requests)) == (
        "connection_error",
        True,
        1,
    )


@pytest.mark.parametrize(
    "base_url", ["http://169.254.169.254/v1", "http://localhost:9/v1", "http://[::1]:9/v1"]
)
def test_a_blocked_base_url_fails_without_retry(user, settings, base_url):
    settings.OUTBOUND_ALLOWLIST = []
    model = LLMModelFactory(provider_type="custom", base_url=base_url, api_key=KEY)

    error = _failure(build_chat_model(model, user=user))

    assert (error.code, error.transient) == ("blocked_url", False)
    assert str(error).startswith("The provider URL is not allowed: Address ")


def test_model_rate_limit_refuses_calls_over_the_limit(fake_llm, user):
    model = _openai(fake_llm, rate_limit_rpm=1)

    _run(build_chat_model(model, user=user))
    error = _failure(build_chat_model(model, user=user))

    assert (error.code, error.transient, error.status) == ("rate_limited", True, 429)
    assert 1 <= error.retry_after <= 60
    assert len(fake_llm.chat_requests) == 1


# --- circuit breaker ----------------------------------------------------------------------------


def test_circuit_opens_after_consecutive_failures(fake_llm, user, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_BREAKER_THRESHOLD = 2
    fake_llm.fail_next(2, status=503)
    model = _openai(fake_llm)

    first = _failure(build_chat_model(model, user=user))
    second = _failure(build_chat_model(model, user=user))
    third = _failure(build_chat_model(model, user=user))

    assert [e.code for e in (first, second, third)] == [
        "server_error",
        "server_error",
        "circuit_open",
    ]
    assert (third.transient, len(fake_llm.chat_requests)) == (True, 2)


def test_circuit_is_shared_by_models_on_the_same_endpoint(fake_llm, user, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_BREAKER_THRESHOLD = 1
    fake_llm.fail_next(1, status=500)

    _failure(build_chat_model(_openai(fake_llm, model_name="a"), user=user))
    error = _failure(build_chat_model(_openai(fake_llm, model_name="b"), user=user))

    assert error.code == "circuit_open"


def test_client_errors_do_not_open_the_circuit(fake_llm, user, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_BREAKER_THRESHOLD = 1
    fake_llm.fail_next(1, status=400)
    model = _openai(fake_llm)

    first = _failure(build_chat_model(model, user=user))
    chunks = _run(build_chat_model(model, user=user))

    assert (first.code, first.transient, chunks[-1].is_last) == ("bad_request", False, True)


def test_half_open_probe_closes_the_circuit_on_success(fake_llm, user, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_BREAKER_THRESHOLD = 1
    settings.LLM_BREAKER_COOLDOWN = 0.2
    fake_llm.fail_next(1, status=502)
    model = _openai(fake_llm)
    breaker = CircuitBreaker(f"openai|{fake_llm.base_url.lower()}")

    _failure(build_chat_model(model, user=user))
    state_after_failure = breaker.state()
    time.sleep(0.25)
    state_after_cooldown = breaker.state()
    chunks = _run(build_chat_model(model, user=user))

    assert (state_after_failure, state_after_cooldown, breaker.state()) == (
        "open",
        "half_open",
        "closed",
    )
    assert chunks[-1].is_last is True


def test_failed_half_open_probe_reopens_the_circuit(fake_llm, user, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_BREAKER_THRESHOLD = 1
    settings.LLM_BREAKER_COOLDOWN = 0.2
    fake_llm.fail_next(2, status=500)
    model = _openai(fake_llm)

    _failure(build_chat_model(model, user=user))
    time.sleep(0.25)
    probe = _failure(build_chat_model(model, user=user))
    after = _failure(build_chat_model(model, user=user))

    assert (probe.code, after.code, len(fake_llm.chat_requests)) == (
        "server_error",
        "circuit_open",
        2,
    )


# --- concurrency --------------------------------------------------------------------------------


def test_fifty_concurrent_streams(fake_llm, user):
    fake_llm.default = Reply(token_count=20, token_delay=0.005)
    model = _openai(fake_llm)
    chats = [build_chat_model(model, user=user) for _ in range(50)]

    async def run_all():
        return await asyncio.gather(*[_collect(chat) for chat in chats])

    results = asyncio.run(run_all())

    assert [len(chunks) for chunks in results] == [21] * 50
    assert len(fake_llm.chat_requests) == 50
