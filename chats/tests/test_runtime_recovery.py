"""Runs whose worker died are re-queued (no token yet) or failed with a visible error —
never left running — by the sweeper or by the redelivered task's claim."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from agentstore import dispatch
from chats.models import ChatMessage, Run, RunEvent
from chats.runtime import recovery
from chats.runtime.execute import Outcome, run_execute
from chats.tasks import runs_sweep_task
from chats.tests.runtime_helpers import agent_version, chat_run, fake_model, stored, types
from tests.fakes.openai_server import Reply
from tests.fixtures.servers import run_asgi_server

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(minutes=5)


def died_while_running(run: Run, payloads: list[dict], *, token: bool) -> None:
    """What a worker killed mid-run leaves behind: stored events, a stale heartbeat."""
    then = timezone.now() - LONG_AGO
    for seq, payload in enumerate(payloads, start=1):
        RunEvent.objects.create(run=run, seq=seq, type=payload["type"], payload=payload)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.RUNNING,
        attempt=1,
        started_at=then,
        heartbeat_at=then,
        first_token_at=then if token else None,
        last_seq=len(payloads),
    )


def streamed_partially(run: Run) -> list[dict]:
    message_id = str(run.assistant_message_id)
    return [
        {"type": "RUN_STARTED", "threadId": str(run.chat_id), "runId": str(run.pk)},
        {"type": "STEP_STARTED", "stepName": "model_call:1"},
        {"type": "TEXT_MESSAGE_START", "messageId": message_id, "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": message_id, "delta": "Half an "},
    ]


def test_sweeper_fails_a_dead_run_that_streamed_and_keeps_the_partial_text(user, fake_llm):
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")
    died_while_running(run, streamed_partially(run), token=True)

    assert runs_sweep_task.run() == {"requeued": 0, "failed": 1, "expired": 0}

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_code == "worker_lost"
    assert run.error_message == "The worker stopped while running this answer."
    assert types(run)[4:] == ["TEXT_MESSAGE_END", "STEP_FINISHED", "RUN_ERROR"]
    assert stored(run)[-1]["message"] == "The worker stopped while running this answer."
    assert list(run.events.values_list("seq", flat=True)) == list(range(1, 8))
    message = ChatMessage.objects.get(pk=run.assistant_message_id)
    assert message.content == "Half an "
    assert message.status == ChatMessage.Status.FAILED
    user_message = ChatMessage.objects.get(pk=run.user_message_id)
    assert (user_message.content, user_message.status) == ("Hi", ChatMessage.Status.SENT)


def test_sweeper_requeues_a_dead_run_without_tokens_and_it_completes(
    user, fake_llm, django_capture_on_commit_callbacks
):
    fake_llm.queue(Reply(text="Back again."))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Hi")
    died_while_running(
        run,
        [
            {"type": "RUN_STARTED", "threadId": str(run.chat_id), "runId": str(run.pk)},
            {"type": "STEP_STARTED", "stepName": "model_call:1"},
        ],
        token=False,
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert runs_sweep_task.run() == {"requeued": 1, "failed": 0, "expired": 0}

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert run.attempt == 2
    assert run.output == "Back again."
    kinds = types(run)
    assert kinds[:4] == ["RUN_STARTED", "STEP_STARTED", "STEP_FINISHED", "CUSTOM"]
    assert kinds.count("RUN_STARTED") == 1
    assert kinds[-1] == "RUN_FINISHED"
    assert list(run.events.values_list("seq", flat=True)) == list(range(1, len(kinds) + 1))


def test_redelivered_task_of_a_dead_run_that_streamed_fails_it(user, fake_llm):
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")
    died_while_running(run, streamed_partially(run), token=True)

    assert run_execute(str(run.pk)) == Outcome.FAILED

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_code == "worker_lost"
    assert fake_llm.chat_requests == []


def test_redelivered_task_of_a_dead_run_without_tokens_reclaims_it(user, fake_llm):
    fake_llm.queue(Reply(text="Reclaimed."))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Hi")
    died_while_running(
        run,
        [{"type": "RUN_STARTED", "threadId": str(run.chat_id), "runId": str(run.pk)}],
        token=False,
    )

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    run.refresh_from_db()
    assert (run.status, run.attempt, run.output) == (Run.Status.COMPLETED, 2, "Reclaimed.")


def test_a_run_that_exhausted_its_attempts_is_failed_not_requeued(user, fake_llm):
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")
    died_while_running(run, [], token=False)
    Run.objects.filter(pk=run.pk).update(attempt=3)

    assert runs_sweep_task.run() == {"requeued": 0, "failed": 1, "expired": 0}

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert types(run) == ["RUN_STARTED", "RUN_ERROR"]


def test_sweeper_leaves_healthy_paused_and_finished_runs_alone(user, fake_llm):
    version = agent_version(fake_model(fake_llm))
    healthy = chat_run(user, version, "a")
    Run.objects.filter(pk=healthy.pk).update(
        status=Run.Status.RUNNING, attempt=1, heartbeat_at=timezone.now(), started_at=timezone.now()
    )
    paused = chat_run(user, version, "b")
    Run.objects.filter(pk=paused.pk).update(status=Run.Status.PAUSED)
    done = chat_run(user, version, "c")
    Run.objects.filter(pk=done.pk).update(status=Run.Status.COMPLETED)

    assert runs_sweep_task.run() == {"requeued": 0, "failed": 0, "expired": 0}

    assert list(Run.objects.order_by("created_at").values_list("status", flat=True)) == [
        "running",
        "paused",
        "completed",
    ]


def test_sweeper_fails_a_run_past_the_hard_time_limit(user, fake_llm, settings):
    settings.RUN_HARD_TIME_LIMIT = 60
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.RUNNING,
        attempt=1,
        heartbeat_at=timezone.now(),
        started_at=timezone.now() - timedelta(minutes=2),
    )

    assert runs_sweep_task.run() == {"requeued": 0, "failed": 1, "expired": 0}


def test_sweeper_fails_a_run_that_never_started(user, fake_llm, settings):
    settings.RUN_PENDING_TIMEOUT = 60
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=2))

    assert runs_sweep_task.run() == {"requeued": 0, "failed": 0, "expired": 1}

    run.refresh_from_db()
    assert (run.status, run.error_code) == (Run.Status.FAILED, "not_started")
    assert types(run) == ["RUN_STARTED", "RUN_ERROR"]


def test_a_run_is_ended_once(user, fake_llm):
    version = agent_version(fake_model(fake_llm))
    run = chat_run(user, version, "Hi")
    died_while_running(run, streamed_partially(run), token=True)

    assert recovery.fail_dead_run(run) is True
    assert recovery.fail_dead_run(run) is False

    assert types(run).count("RUN_ERROR") == 1


def test_dangling_closers_close_in_order():
    payloads = [
        {"type": "STEP_STARTED", "stepName": "model_call:1"},
        {"type": "REASONING_START", "messageId": "r1"},
        {"type": "REASONING_MESSAGE_START", "messageId": "r1"},
        {"type": "TOOL_CALL_START", "toolCallId": "c1"},
        {"type": "STEP_STARTED", "stepName": "tool_call:2"},
    ]

    assert recovery.dangling_closers(payloads) == [
        {"type": "REASONING_MESSAGE_END", "messageId": "r1"},
        {"type": "REASONING_END", "messageId": "r1"},
        {"type": "TOOL_CALL_END", "toolCallId": "c1"},
        {"type": "STEP_FINISHED", "stepName": "tool_call:2", "metadata": {"status": "failed"}},
        {"type": "STEP_FINISHED", "stepName": "model_call:1", "metadata": {"status": "failed"}},
    ]


@pytest.mark.django_db(transaction=True)
def test_the_embedded_server_sweeps_dead_runs(user, fake_llm, settings):
    settings.RUN_EMBEDDED_SWEEPER = True
    settings.RUN_ORPHAN_DELAY = 0
    settings.RUN_SWEEP_INTERVAL = 0.2
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    dead = chat_run(user, version, "was running when the process died")
    died_while_running(dead, streamed_partially(dead), token=True)

    with run_asgi_server():
        time.sleep(1.0)  # a few sweeper ticks
        dispatch.wait_for_pending(timeout=20)

    dead.refresh_from_db()
    assert (dead.status, dead.error_code) == (Run.Status.FAILED, "worker_lost")


@pytest.mark.django_db(transaction=True)
def test_the_embedded_server_restarts_runs_left_pending_by_a_restart(user, fake_llm, settings):
    settings.RUN_EMBEDDED_SWEEPER = True
    settings.RUN_ORPHAN_DELAY = 0.1
    settings.RUN_SWEEP_INTERVAL = 600
    fake_llm.queue(Reply(text="Picked up after a restart."))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    orphan = chat_run(user, version, "left pending by the previous process")

    with run_asgi_server():
        time.sleep(0.5)
        dispatch.wait_for_pending(timeout=20)

    orphan.refresh_from_db()
    assert (orphan.status, orphan.output) == (Run.Status.COMPLETED, "Picked up after a restart.")


@pytest.mark.django_db(transaction=True)
def test_test_servers_run_no_sweeper_unless_asked(user, fake_llm, settings):
    settings.RUN_ORPHAN_DELAY = 0.05
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    pending = chat_run(user, version, "nobody dispatched me")

    with run_asgi_server():
        time.sleep(0.5)
        dispatch.wait_for_pending(timeout=20)

    pending.refresh_from_db()
    assert pending.status == Run.Status.PENDING
