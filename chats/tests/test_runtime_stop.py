"""Stopping runs (running, pending, paused) and pausing for tool approval."""

from __future__ import annotations

import threading
import time

import pytest
from django.utils import timezone

from chats import services
from chats.models import ChatMessage, Run
from chats.runtime import control
from chats.runtime.execute import Outcome, run_execute
from chats.tests.runtime_helpers import (
    agent_version,
    chat_run,
    fake_model,
    oneoff_run,
    stored,
    text_of,
    types,
)
from tests.fakes.openai_server import Reply, ToolCall

pytestmark = pytest.mark.django_db


def stop_after_tokens(fake_llm, run_id: str, stopped_at: list[float]) -> threading.Thread:
    """Request the stop once the model is streaming (only the cache is touched here)."""

    def stopper() -> None:
        deadline = time.monotonic() + 10
        while not fake_llm.chat_requests and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # ~15 tokens at 20 ms each
        stopped_at.append(time.time())
        control.request_stop(run_id)

    thread = threading.Thread(target=stopper, daemon=True)
    thread.start()
    return thread


def test_stop_cancels_a_streaming_run_within_a_second_and_keeps_the_partial_text(user, fake_llm):
    fake_llm.queue(Reply(token_count=500, token_delay=0.02))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Count slowly")
    stopped_at: list[float] = []
    stopper = stop_after_tokens(fake_llm, str(run.pk), stopped_at)

    assert run_execute(str(run.pk)) == Outcome.CANCELLED

    stopper.join()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.finished_at.timestamp() - stopped_at[0] < 1.0
    partial = text_of(run)
    full = "".join(f"t{i} " for i in range(500))
    assert partial
    assert full.startswith(partial)
    assert partial != full
    assert run.output == partial
    message = ChatMessage.objects.get(pk=run.assistant_message_id)
    assert message.content == partial
    assert message.status == ChatMessage.Status.SENT
    assert message.metadata["cancelled"] is True
    terminal = stored(run)[-1]
    assert terminal["type"] == "RUN_FINISHED"
    assert terminal["outcome"] == {"type": "cancelled"}
    assert types(run).count("RUN_FINISHED") == 1
    assert "RUN_ERROR" not in types(run)
    assert types(run)[-3:] == ["TEXT_MESSAGE_END", "STEP_FINISHED", "RUN_FINISHED"]
    assert control.stop_requested(run.pk) is False


def test_stop_of_a_running_run_sets_the_flag_and_the_time(user, fake_llm):
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, heartbeat_at=timezone.now())

    stopped = services.run_stop(user, run_id=run.pk)

    assert stopped.status == Run.Status.RUNNING
    assert stopped.cancel_requested_at is not None
    assert control.stop_requested(run.pk) is True


def test_stop_of_a_pending_run_cancels_it_at_once(user, fake_llm):
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")

    stopped = services.run_stop(user, run_id=run.pk)

    assert stopped.status == Run.Status.CANCELLED
    assert types(run) == ["RUN_STARTED", "RUN_FINISHED"]
    assert stored(run)[-1]["outcome"] == {"type": "cancelled"}
    assert run_execute(str(run.pk)) == Outcome.NOOP
    assert fake_llm.chat_requests == []


def test_stop_of_another_users_run_is_not_found(user, other_user, fake_llm):
    from agentstore.errors import NotFound

    version = agent_version(fake_model(fake_llm))
    run = oneoff_run(user, version, "Hi")

    with pytest.raises(NotFound):
        services.run_stop(other_user, run_id=run.pk)

    run.refresh_from_db()
    assert run.status == Run.Status.PENDING


def test_stop_of_a_finished_run_changes_nothing(user, fake_llm):
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Hi")
    run_execute(str(run.pk))
    count = run.events.count()

    stopped = services.run_stop(user, run_id=run.pk)

    assert stopped.status == Run.Status.COMPLETED
    assert run.events.count() == count


def test_a_tool_that_needs_approval_pauses_the_run(user, fake_llm):
    fake_llm.queue(Reply(tool_calls=[ToolCall(name="current_time", arguments={}, id="call_1")]))
    version = agent_version(
        fake_model(fake_llm),
        builtin_tools=["current_time"],
        tool_approval={"current_time": "ask"},
    )
    run = chat_run(user, version, "time?")

    assert run_execute(str(run.pk)) == Outcome.PAUSED

    run.refresh_from_db()
    assert run.status == Run.Status.PAUSED
    assert run.finished_at is None
    assert "TOOL_CALL_RESULT" not in types(run)
    terminal = stored(run)[-1]
    assert terminal["type"] == "RUN_FINISHED"
    assert terminal["outcome"]["type"] == "interrupt"
    assert terminal["outcome"]["interrupts"] == [
        {
            "id": "call_1",
            "reason": "tool_approval",
            "toolCallId": "call_1",
            "message": "current_time needs your approval before it runs.",
        }
    ]
    assert run.state["pending_approvals"] == [
        {"tool_call_id": "call_1", "name": "current_time", "input": {}}
    ]
    assert '"call_1"' in run.state["agent_state"]
    assert len(fake_llm.chat_requests) == 1
    message = ChatMessage.objects.get(pk=run.assistant_message_id)
    assert message.metadata["pending_approval"] == run.state["pending_approvals"]
    assert message.metadata["tool_calls"][0]["status"] == "awaiting_approval"


def test_stop_of_a_paused_run_cancels_it_without_new_events(user, fake_llm):
    fake_llm.queue(Reply(tool_calls=[ToolCall(name="current_time", arguments={})]))
    version = agent_version(
        fake_model(fake_llm),
        builtin_tools=["current_time"],
        tool_approval={"current_time": "ask"},
    )
    run = chat_run(user, version, "time?")
    run_execute(str(run.pk))
    count = run.events.count()

    stopped = services.run_stop(user, run_id=run.pk)

    assert stopped.status == Run.Status.CANCELLED
    assert run.events.count() == count


def test_allowed_tools_run_without_asking(user, fake_llm):
    fake_llm.queue(
        Reply(tool_calls=[ToolCall(name="current_time", arguments={})]), Reply(text="ok")
    )
    version = agent_version(
        fake_model(fake_llm),
        builtin_tools=["current_time"],
        tool_approval={"current_time": "allow"},
    )
    run = chat_run(user, version, "time?")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    assert "TOOL_CALL_RESULT" in types(run)
