"""The runtime end to end, inline: the fake OpenAI-compatible server drives the real
provider adapter and the real AgentScope agent; events, steps, messages and the run row
are checked as stored."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from chats.models import ChatMessage, Run
from chats.runtime.execute import Outcome, run_execute
from chats.tasks import run_execute_task
from chats.tests.runtime_helpers import (
    TERMINAL_TYPES,
    agent_version,
    chat_run,
    fake_model,
    oneoff_run,
    steps,
    stored,
    text_of,
    types,
)
from tests.fakes.openai_server import Reply, ToolCall

pytestmark = pytest.mark.django_db


CURRENT_TIME_SCHEMA = {
    "type": "function",
    "function": {
        "name": "current_time",
        "description": "Get the current date and time.",
        "parameters": {
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "default": "UTC",
                    "description": (
                        'An IANA time zone name, e.g. "UTC", "Europe/Paris", "Asia/Shanghai".'
                    ),
                }
            },
        },
    },
}


def assert_well_formed(run: Run) -> None:
    """Contiguous seq 1..N, RUN_STARTED first, exactly one terminal event, last."""
    rows = list(run.events.order_by("seq").values_list("seq", "type"))
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    kinds = [kind for _, kind in rows]
    assert kinds[0] == "RUN_STARTED"
    assert sum(kind in TERMINAL_TYPES for kind in kinds) == 1
    assert kinds[-1] in TERMINAL_TYPES


def test_text_streams_into_events_message_and_run(user, fake_llm):
    fake_llm.queue(Reply(text="Paris is the capital of France.", prompt_tokens=100))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "What is the capital of France?")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    run.refresh_from_db()
    assert_well_formed(run)
    assert types(run)[:3] == ["RUN_STARTED", "STEP_STARTED", "TEXT_MESSAGE_START"]
    assert types(run)[-3:] == ["TEXT_MESSAGE_END", "STEP_FINISHED", "RUN_FINISHED"]
    assert text_of(run) == "Paris is the capital of France."
    assert run.status == Run.Status.COMPLETED
    assert run.output == "Paris is the capital of France."
    assert run.attempt == 1
    assert run.usage == {"input_tokens": 100, "output_tokens": 6, "total_tokens": 106}
    # 100 in at 1.0 per 1k + 6 out at 2.0 per 1k
    assert run.cost == Decimal("0.112000")
    assert run.started_at <= run.first_token_at <= run.finished_at
    assert run.last_seq == len(stored(run))
    assert steps(run) == [("model_call", "fake-model", "completed")]
    message = ChatMessage.objects.get(pk=run.assistant_message_id)
    assert message.content == "Paris is the capital of France."
    assert message.status == ChatMessage.Status.SENT
    assert message.metadata["usage"] == run.usage
    assert message.metadata["model"] == "Fake GPT"
    assert message.metadata["agent_version"] == "1.0.0"
    finished = stored(run)[-1]
    assert finished["outcome"] == {"type": "success"}
    assert finished["usage"][0]["totalTokens"] == 106


def test_terminal_event_has_message_id_of_the_assistant_message(user, fake_llm):
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Hi")

    run_execute(str(run.pk))

    text_events = [p for p in stored(run) if p["type"].startswith("TEXT_MESSAGE")]
    assert {p["messageId"] for p in text_events} == {str(run.assistant_message_id)}


@pytest.mark.parametrize("repeat", [1, 2])  # the second build uses the cached tool schemas
def test_tool_call_current_time_streams_tool_events_and_steps(user, fake_llm, repeat):
    fake_llm.queue(
        Reply(tool_calls=[ToolCall(name="current_time", arguments={"timezone": "Asia/Shanghai"})]),
        Reply(text="It is afternoon in Shanghai."),
    )
    version = agent_version(fake_model(fake_llm), builtin_tools=["current_time"])
    run = chat_run(user, version, "What time is it in Shanghai?")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    run.refresh_from_db()
    assert_well_formed(run)
    kinds = types(run)
    start = kinds.index("TOOL_CALL_START")
    assert kinds[start : kinds.index("TOOL_CALL_END") + 1][0] == "TOOL_CALL_START"
    assert "TOOL_CALL_ARGS" in kinds
    assert kinds.index("TOOL_CALL_RESULT") > kinds.index("TOOL_CALL_END")
    result = next(p for p in stored(run) if p["type"] == "TOOL_CALL_RESULT")
    assert "+08:00 (Asia/Shanghai" in result["content"]
    args = "".join(p["delta"] for p in stored(run) if p["type"] == "TOOL_CALL_ARGS")
    assert json.loads(args) == {"timezone": "Asia/Shanghai"}
    assert steps(run) == [
        ("model_call", "fake-model", "completed"),
        ("tool_call", "current_time", "completed"),
        ("model_call", "fake-model", "completed"),
    ]
    # The tool schema reached the model, and the second call carried the tool result.
    first, second = fake_llm.chat_requests
    assert first.body["tools"] == [CURRENT_TIME_SCHEMA]
    assert second.body["messages"][-1]["role"] == "tool"
    call = ChatMessage.objects.get(pk=run.assistant_message_id).metadata["tool_calls"][0]
    assert call["name"] == "current_time"
    assert call["input"] == {"timezone": "Asia/Shanghai"}
    assert call["status"] == "completed"
    assert "Asia/Shanghai" in call["output"]


def test_text_before_and_after_a_tool_call_is_one_answer(user, fake_llm):
    fake_llm.queue(
        Reply(text="Let me check.", tool_calls=[ToolCall(name="current_time", arguments={})]),
        Reply(text="Done."),
    )
    version = agent_version(fake_model(fake_llm), builtin_tools=["current_time"])
    run = chat_run(user, version, "time?")

    run_execute(str(run.pk))

    run.refresh_from_db()
    assert run.output == "Let me check.\n\nDone."
    assert text_of(run) == run.output
    assert types(run).count("TEXT_MESSAGE_START") == 2


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        # truncated JSON: repaired to an empty time zone
        ('{"timezone": ', "Unknown time zone ''; use an IANA name like 'UTC'."),
        ({"timezone": 42}, "Unknown time zone '42'; use an IANA name like 'UTC'."),
        ('{"tz": "UTC"}', "current_time() got an unexpected keyword argument 'tz'"),
    ],
)
def test_bad_tool_arguments_and_tool_errors_become_error_results(
    user, fake_llm, arguments, expected
):
    fake_llm.queue(
        Reply(tool_calls=[ToolCall(name="current_time", arguments=arguments)]),
        Reply(text="Sorry, that did not work."),
    )
    version = agent_version(fake_model(fake_llm), builtin_tools=["current_time"])
    run = chat_run(user, version, "time on Mars?")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    assert_well_formed(run)
    result = next(p for p in stored(run) if p["type"] == "TOOL_CALL_RESULT")
    assert result["content"] == expected
    assert steps(run)[1] == ("tool_call", "current_time", "failed")
    assert text_of(run) == "Sorry, that did not work."


def test_tool_exception_is_a_failed_step_and_the_run_goes_on(user, fake_llm):
    fake_llm.queue(
        Reply(tool_calls=[ToolCall(name="current_time", arguments={"timezone": "Nowhere/Land"})]),
        Reply(text="I could not tell the time."),
    )
    version = agent_version(fake_model(fake_llm), builtin_tools=["current_time"])
    run = chat_run(user, version, "time?")

    run_execute(str(run.pk))

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert steps(run)[1] == ("tool_call", "current_time", "failed")
    result = next(p for p in stored(run) if p["type"] == "TOOL_CALL_RESULT")
    assert "Unknown time zone 'Nowhere/Land'" in result["content"]


def test_unknown_tool_from_the_model_is_an_error_result(user, fake_llm):
    fake_llm.queue(
        Reply(tool_calls=[ToolCall(name="rm_rf", arguments={})]),
        Reply(text="Fine."),
    )
    version = agent_version(fake_model(fake_llm), builtin_tools=["current_time"])
    run = chat_run(user, version, "do it")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    result = next(p for p in stored(run) if p["type"] == "TOOL_CALL_RESULT")
    assert "rm_rf" in result["content"]


def test_model_error_ends_with_exactly_one_run_error(user, fake_llm, settings):
    fake_llm.queue(Reply(status=400, error_message="The request was bad."))
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")

    assert run_execute(str(run.pk)) == Outcome.FAILED

    run.refresh_from_db()
    assert_well_formed(run)
    assert "RUN_FINISHED" not in types(run)
    error = stored(run)[-1]
    assert error["type"] == "RUN_ERROR"
    assert error["code"] == "bad_request"
    assert error["message"] == run.error_message
    assert run.status == Run.Status.FAILED
    assert run.error_code == "bad_request"
    message = ChatMessage.objects.get(pk=run.assistant_message_id)
    assert message.status == ChatMessage.Status.FAILED
    assert message.message_type == ChatMessage.MessageType.ERROR
    assert message.metadata["error"] == {"code": "bad_request", "message": run.error_message}


def test_error_after_the_first_token_keeps_the_partial_text_and_is_not_retried(
    user, fake_llm, settings
):
    settings.LLM_MAX_RETRIES = 0
    fake_llm.queue(Reply(text="one two three four five", disconnect_after_tokens=2))
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "count")

    assert run_execute_task.run(str(run.pk)) == "failed"

    run.refresh_from_db()
    assert_well_formed(run)
    assert run.attempt == 1
    assert len(fake_llm.chat_requests) == 1
    assert run.output == "one two "
    assert ChatMessage.objects.get(pk=run.assistant_message_id).content == "one two "
    assert types(run)[-3:] == ["TEXT_MESSAGE_END", "STEP_FINISHED", "RUN_ERROR"]


def test_429_before_the_first_token_retries_the_run(user, fake_llm, settings):
    settings.LLM_MAX_RETRIES = 0  # no provider-level retry: the run itself is retried
    settings.RUN_RETRY_BASE_DELAY = 0.01
    fake_llm.fail_next(1, status=429)
    fake_llm.queue(Reply(text="Second time lucky."))
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")

    assert run_execute_task.run(str(run.pk)) == "completed"

    run.refresh_from_db()
    assert_well_formed(run)
    assert run.status == Run.Status.COMPLETED
    assert run.attempt == 2
    assert run.output == "Second time lucky."
    kinds = types(run)
    assert kinds.count("RUN_STARTED") == 1
    retry = next(p for p in stored(run) if p["type"] == "CUSTOM" and p["name"] == "run_retry")
    assert retry["value"]["code"] == "rate_limited"
    assert retry["value"]["attempt"] == 1
    assert [kind for kind, _, _ in steps(run)] == ["model_call", "model_call"]
    assert [status for _, _, status in steps(run)] == ["failed", "completed"]


def test_transient_errors_on_every_attempt_fail_the_run(user, fake_llm, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.RUN_RETRY_BASE_DELAY = 0.01
    fake_llm.fail_next(3, status=503)
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")

    assert run_execute_task.run(str(run.pk)) == "failed"

    run.refresh_from_db()
    assert_well_formed(run)
    assert run.attempt == 3
    assert run.error_code == "server_error"
    assert len(fake_llm.chat_requests) == 3


def test_deltas_are_batched_not_one_event_or_row_per_token(
    user, fake_llm, django_assert_max_num_queries
):
    fake_llm.queue(Reply(token_count=200, token_delay=0.002))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = oneoff_run(user, version, "Count to 200")

    with django_assert_max_num_queries(40):
        run_execute(str(run.pk))

    run.refresh_from_db()
    assert_well_formed(run)
    contents = types(run).count("TEXT_MESSAGE_CONTENT")
    assert 2 <= contents <= 40
    assert run.output == "".join(f"t{i} " for i in range(200))


def test_the_model_stream_holds_text_while_the_emitter_would(user, fake_llm, monkeypatch, settings):
    """Text the emitter would batch anyway reaches AgentScope as fewer, longer chunks."""
    from agentscope.model import OpenAIChatModel

    # A long flush interval, so the hold (not a busy machine's scheduling) decides how
    # the 100 pieces are grouped: ~200 ms of text held ~200 ms at a time.
    settings.RUN_EVENT_FLUSH_INTERVAL = 0.2

    seen: list[str] = []
    parse = OpenAIChatModel._parse_stream_response

    async def counting(self, start, response):
        async for delta in parse(self, start, response):
            seen.extend(block.text for block in delta.content if getattr(block, "text", None))
            yield delta

    monkeypatch.setattr(OpenAIChatModel, "_parse_stream_response", counting)
    fake_llm.queue(Reply(token_count=100, token_delay=0.002))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = oneoff_run(user, version, "Count to 100")

    run_execute(str(run.pk))

    run.refresh_from_db()
    assert run.output == "".join(f"t{i} " for i in range(100))
    assert "".join(seen) == run.output
    assert seen[0] == "t0 "  # the first piece is not held
    assert len(seen) < 30  # 100 pieces 2 ms apart, held up to 200 ms at a time
    from integrations.llm.openai_stream import stream_hold

    assert stream_hold.get() is None  # nothing leaks to what the caller's thread runs next


def test_one_off_run_answers_from_its_input(user, fake_llm):
    fake_llm.queue(Reply(text="Forty-two."))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = oneoff_run(user, version, "The answer?")

    run_execute(str(run.pk))

    run.refresh_from_db()
    assert run.output == "Forty-two."
    assert fake_llm.chat_requests[0].body["messages"][1:] == [
        {"role": "user", "name": "user", "content": [{"type": "text", "text": "The answer?"}]}
    ]
    text_ids = {p["messageId"] for p in stored(run) if p["type"] == "TEXT_MESSAGE_START"}
    assert text_ids == {str(run.pk)}


def test_second_delivery_of_the_same_run_is_a_no_op(user, fake_llm):
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Hi")
    run_execute(str(run.pk))
    count = run.events.count()

    assert run_execute(str(run.pk)) == Outcome.NOOP

    assert run.events.count() == count
    assert len(fake_llm.chat_requests) == 1


def test_a_run_running_elsewhere_with_a_fresh_heartbeat_is_left_alone(user, fake_llm):
    from django.utils import timezone

    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Hi")
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.RUNNING, attempt=1, heartbeat_at=timezone.now()
    )

    assert run_execute(str(run.pk)) == Outcome.BUSY

    assert fake_llm.chat_requests == []
