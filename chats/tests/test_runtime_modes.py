"""The same run executed inline, by the embedded dispatcher under a real ASGI server, and
by a real Celery worker (PostgreSQL + Redis) stores the same events; what is published
live is exactly what is stored. A worker killed mid-run never leaves the run running."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from agentstore.dispatch import dispatch
from chats import events, selectors
from chats.models import ChatMessage, Run
from chats.runtime.execute import run_execute
from chats.tasks import run_execute_task, runs_sweep_task
from chats.tests.runtime_helpers import (
    agent_version,
    chat_run,
    collapsed_types,
    fake_model,
    stored,
    text_of,
)
from tests.fakes.openai_server import Reply, ToolCall

WORKER_ENV = {"OUTBOUND_ALLOWLIST": "127.0.0.1", "LLM_MAX_RETRIES": "0"}


def script() -> list[Reply]:
    return [
        Reply(tool_calls=[ToolCall(name="current_time", arguments={"timezone": "UTC"})]),
        Reply(text="The time is now, as you can see."),
    ]


def signature(run: Run) -> tuple[list[str], str, str]:
    run.refresh_from_db()
    return collapsed_types(run), text_of(run), run.status


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def finished(run: Run) -> bool:
    return Run.objects.filter(pk=run.pk, status__in=Run.TERMINAL).exists()


async def join(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def collect(layer, channel: str) -> list[dict]:
    received = []
    while True:
        message = await asyncio.wait_for(layer.receive(channel), timeout=20)
        received.append(message["event"])
        if message["event"]["type"] in {"RUN_FINISHED", "RUN_ERROR"}:
            return received


@pytest.mark.django_db(transaction=True)
def test_embedded_run_under_an_asgi_server_matches_inline_and_publishes_what_it_stores(
    user, fake_llm, asgi_server, in_memory_channel_layer
):
    version = agent_version(fake_model(fake_llm), builtin_tools=["current_time"])
    fake_llm.queue(*script())
    inline = chat_run(user, version, "What time is it?")
    run_execute(str(inline.pk))
    fake_llm.queue(*script())
    embedded = chat_run(user, version, "What time is it?")
    channel = asgi_server.call(join(in_memory_channel_layer, events.chat_group(embedded.chat_id)))

    future = dispatch(run_execute_task, str(embedded.pk))

    assert future.result(timeout=30) == "completed"
    live = asgi_server.call(collect(in_memory_channel_layer, channel), timeout=30)
    assert signature(embedded) == signature(inline)
    assert signature(embedded)[2] == Run.Status.COMPLETED
    assert live == selectors.run_events_after(embedded)
    assert [event["seq"] for event in live] == list(range(1, len(live) + 1))
    assert {event["runId"] for event in live} == {str(embedded.pk)}


@pytest.mark.integration
def test_a_celery_worker_stores_the_same_events_as_inline(user, fake_llm, celery_worker_factory):
    celery_worker_factory.start(env=WORKER_ENV)
    version = agent_version(fake_model(fake_llm), builtin_tools=["current_time"])
    fake_llm.queue(*script())
    inline = chat_run(user, version, "What time is it?")
    run_execute(str(inline.pk))
    fake_llm.queue(*script())
    celery_run = chat_run(user, version, "What time is it?")

    dispatch(run_execute_task, str(celery_run.pk))

    wait_until(lambda: finished(celery_run))
    assert signature(celery_run) == signature(inline)
    assert signature(celery_run)[2] == Run.Status.COMPLETED
    assert [e["seq"] for e in selectors.run_events_after(celery_run)] == list(
        range(1, len(stored(celery_run)) + 1)
    )


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_run_whose_model_cannot_be_built_fails_the_same_way_in_a_worker(
    user, fake_llm, celery_worker_factory
):
    # A worker prepares the run and builds its model on the run's thread before it
    # enters the loop (Execution.prebuild); a failure there still ends the run after
    # RUN_STARTED with the error's code, as inline.
    from integrations.models import LLMModel

    celery_worker_factory.start(env=WORKER_ENV)
    llm = fake_model(fake_llm)
    version = agent_version(llm, agent_type="dialog")
    LLMModel.objects.filter(pk=llm.pk).update(is_active=False)
    inline = chat_run(user, version, "Hello?")
    run_execute(str(inline.pk))
    worker_run = chat_run(user, version, "Hello?")

    dispatch(run_execute_task, str(worker_run.pk))

    wait_until(lambda: finished(worker_run))
    assert signature(worker_run) == signature(inline)
    assert signature(worker_run)[2] == Run.Status.FAILED
    last = stored(worker_run)[-1]
    assert (last["type"], last["code"]) == ("RUN_ERROR", "model_inactive")
    assert not fake_llm.chat_requests


def kill_mid_run(fake_llm, factory, settings, run: Run, *, after_first_token: bool) -> Run:
    """Start a worker, let it take ``run``, SIGKILL the whole worker, start another one
    (which restores unacknowledged messages after 3 s) and wait until the run has ended."""
    settings.RUN_STALE_AFTER = 2
    worker = factory.start(env={**WORKER_ENV, "RUN_HEARTBEAT_INTERVAL": "0.5"})
    dispatch(run_execute_task, str(run.pk))
    if after_first_token:
        wait_until(lambda: Run.objects.filter(pk=run.pk, first_token_at__isnull=False).exists())
    else:
        wait_until(lambda: fake_llm.chat_requests)
    worker.kill(signal.SIGKILL)
    factory.start(
        env={
            **WORKER_ENV,
            "RUN_STALE_AFTER": "2",
            "RUN_HEARTBEAT_INTERVAL": "0.5",
            "CELERY_VISIBILITY_TIMEOUT": "3",
        }
    )

    # Celery beat would run the sweeper; here the test does, until the run has ended.
    def ended() -> bool:
        if not finished(run):
            runs_sweep_task.run()
        return finished(run)

    wait_until(ended, timeout=60, interval=0.5)
    run.refresh_from_db()
    user_message = ChatMessage.objects.get(pk=run.user_message_id)
    assert (user_message.content, user_message.status) == ("Tell me something", "sent")
    kinds = [p["type"] for p in stored(run)]
    assert kinds.count("RUN_STARTED") == 1
    assert sum(kind in {"RUN_FINISHED", "RUN_ERROR"} for kind in kinds) == 1
    assert list(run.events.values_list("seq", flat=True)) == list(range(1, run.last_seq + 1))
    return run


@pytest.mark.integration
def test_a_worker_killed_after_the_first_token_fails_the_run_visibly(
    user, fake_llm, celery_worker_factory, settings
):
    fake_llm.queue(Reply(token_count=300, token_delay=0.05))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Tell me something")

    run = kill_mid_run(fake_llm, celery_worker_factory, settings, run, after_first_token=True)

    assert (run.status, run.error_code) == (Run.Status.FAILED, "worker_lost")
    assert stored(run)[-1]["type"] == "RUN_ERROR"
    assert run.output == text_of(run)
    assert run.output.startswith("t0 ")
    assert ChatMessage.objects.get(pk=run.assistant_message_id).status == "failed"


@pytest.mark.integration
def test_a_worker_killed_before_the_first_token_is_retried_and_completes(
    user, fake_llm, celery_worker_factory, settings
):
    fake_llm.queue(Reply(text="Too slow.", first_token_delay=30), Reply(text="Recovered answer."))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Tell me something")

    run = kill_mid_run(fake_llm, celery_worker_factory, settings, run, after_first_token=False)

    assert (run.status, run.attempt, run.output) == (
        Run.Status.COMPLETED,
        2,
        "Recovered answer.",
    )
    assert stored(run)[-1]["type"] == "RUN_FINISHED"


def test_the_gil_switch_interval_is_set_from_settings(settings):
    import sys

    from chats.runtime.loop import apply_switch_interval

    before = sys.getswitchinterval()
    try:
        settings.WORKER_SWITCH_INTERVAL = 0.002
        apply_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(0.002)
        settings.WORKER_SWITCH_INTERVAL = 0  # 0: leave Python's own
        apply_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)


def test_a_context_built_without_the_users_key_leaves_it_to_the_key_resolution():
    import dataclasses

    from chats.runtime.builder import RunContext
    from integrations.llm.base import KEY_NOT_LOADED

    (own_key,) = [f for f in dataclasses.fields(RunContext) if f.name == "own_key"]
    assert own_key.default_factory() is KEY_NOT_LOADED  # not None: "the user has no key"
