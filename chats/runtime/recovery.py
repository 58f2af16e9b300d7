"""Ending runs from outside their execution: a worker that died, a stop before the run
started, the periodic sweeper (STYLE §3, NOTES "no message lost").

These paths work from the stored events alone: they close whatever the dead execution
left open (a text message, a tool call, a step), keep the partial answer it had streamed
in the assistant message, and store + publish exactly one terminal event — unless the
run already has one (every update is conditional on the run's status, so a run is ended
once).

The sweeper (``runs_sweep``, every ``RUN_SWEEP_INTERVAL`` seconds from Celery beat or the
embedded loop) looks at
- runs ``running`` whose heartbeat is older than ``RUN_STALE_AFTER`` (the worker died),
  or that started longer ago than ``RUN_HARD_TIME_LIMIT``: re-queued when no token was
  streamed yet and attempts remain (the run goes back to ``pending`` and is dispatched
  again), otherwise failed with "The worker stopped while running this answer.";
- runs ``pending`` for longer than ``RUN_PENDING_TIMEOUT`` (their task was lost): failed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from chats import events
from chats.models import Chat, ChatMessage, Run, RunEvent
from chats.runtime import control

logger = logging.getLogger(__name__)

WORKER_LOST = "worker_lost"


def worker_lost_message() -> str:
    return _("The worker stopped while running this answer.")


def dangling_closers(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The END events a stream cut short still owes, in AG-UI order."""
    open_text: set[str] = set()
    open_reasoning: dict[str, bool] = {}
    open_tools: set[str] = set()
    open_steps: list[str] = []
    for payload in payloads:
        kind = payload.get("type")
        if kind == "TEXT_MESSAGE_START":
            open_text.add(payload.get("messageId", ""))
        elif kind == "TEXT_MESSAGE_END":
            open_text.discard(payload.get("messageId", ""))
        elif kind == "REASONING_START":
            open_reasoning[payload.get("messageId", "")] = False
        elif kind == "REASONING_MESSAGE_START":
            open_reasoning[payload.get("messageId", "")] = True
        elif kind == "REASONING_MESSAGE_END":
            open_reasoning[payload.get("messageId", "")] = False
        elif kind == "REASONING_END":
            open_reasoning.pop(payload.get("messageId", ""), None)
        elif kind == "TOOL_CALL_START":
            open_tools.add(payload.get("toolCallId", ""))
        elif kind == "TOOL_CALL_END":
            open_tools.discard(payload.get("toolCallId", ""))
        elif kind == "STEP_STARTED":
            open_steps.append(payload.get("stepName", ""))
        elif kind == "STEP_FINISHED" and payload.get("stepName") in open_steps:
            open_steps.remove(payload.get("stepName"))
    closers: list[dict[str, Any]] = []
    for message_id in sorted(open_text):
        closers.append({"type": "TEXT_MESSAGE_END", "messageId": message_id})
    for message_id, message_open in open_reasoning.items():
        if message_open:
            closers.append({"type": "REASONING_MESSAGE_END", "messageId": message_id})
        closers.append({"type": "REASONING_END", "messageId": message_id})
    for tool_call_id in sorted(open_tools):
        closers.append({"type": "TOOL_CALL_END", "toolCallId": tool_call_id})
    for step_name in reversed(open_steps):
        closers.append(
            {"type": "STEP_FINISHED", "stepName": step_name, "metadata": {"status": "failed"}}
        )
    return closers


# Events that mean the model had started answering: a retry would repeat what was shown.
TOKEN_EVENTS = ("TEXT_MESSAGE_CONTENT", "REASONING_MESSAGE_CONTENT", "TOOL_CALL_START")


def streamed(run: Run) -> bool:
    """Did the run stream anything to the user? (``first_token_at`` is only written with
    the heartbeat, so a worker that died early may not have recorded it.)"""
    return (
        run.first_token_at is not None
        or RunEvent.objects.filter(run_id=run.pk, type__in=TOKEN_EVENTS).exists()
    )


def streamed_text(payloads: list[dict[str, Any]]) -> str:
    return "".join(p.get("delta", "") for p in payloads if p.get("type") == "TEXT_MESSAGE_CONTENT")


def _stored_payloads(run_id: Any) -> list[dict[str, Any]]:
    return list(
        RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("payload", flat=True)
    )


def end_run_from_storage(
    run: Run,
    *,
    status: str,
    code: str = "",
    message: str = "",
    from_statuses: tuple[str, ...] = (Run.Status.RUNNING,),
) -> bool:
    """End ``run`` as ``failed`` or ``cancelled`` without its execution. Returns False if
    its status changed meanwhile (someone else ended or reclaimed it)."""
    now = timezone.now()
    thread_id = str(run.chat_id or run.id)
    published: list[tuple[int, dict[str, Any]]] = []
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(pk=run.pk, status__in=from_statuses).first()
        if locked is None:
            return False
        payloads = _stored_payloads(run.pk)
        new: list[dict[str, Any]] = []
        if not payloads:
            new.append({"type": "RUN_STARTED", "threadId": thread_id, "runId": str(run.pk)})
        new.extend(dangling_closers(payloads))
        if status == Run.Status.CANCELLED:
            new.append(
                {
                    "type": "RUN_FINISHED",
                    "threadId": thread_id,
                    "runId": str(run.pk),
                    "outcome": {"type": "cancelled"},
                    "result": {"status": "cancelled"},
                }
            )
        else:
            new.append({"type": "RUN_ERROR", "message": message, "code": code})
        timestamp = int(now.timestamp() * 1000)
        last_seq = RunEvent.objects.filter(run_id=run.pk).aggregate(last=Max("seq"))["last"] or 0
        rows = []
        for payload in new:
            last_seq += 1
            payload = {**payload, "timestamp": timestamp}
            rows.append(
                RunEvent(run_id=run.pk, seq=last_seq, type=payload["type"], payload=payload)
            )
            published.append((last_seq, payload))
        RunEvent.objects.bulk_create(rows)
        partial = streamed_text(payloads)
        Run.objects.filter(pk=run.pk).update(
            status=status,
            error_code=code,
            error_message=message,
            output=partial,
            finished_at=now,
            heartbeat_at=now,
            last_seq=last_seq,
            current_step="",
        )
        if run.assistant_message_id:
            msg = (
                ChatMessage.objects.select_for_update().filter(pk=run.assistant_message_id).first()
            )
            if msg is not None:
                metadata = dict(msg.metadata or {})
                metadata["run_id"] = str(run.pk)
                if status == Run.Status.CANCELLED:
                    metadata["cancelled"] = True
                    msg.status = ChatMessage.Status.SENT
                else:
                    metadata["error"] = {"code": code, "message": message}
                    msg.status = ChatMessage.Status.FAILED
                    msg.message_type = ChatMessage.MessageType.ERROR
                msg.content = partial
                msg.metadata = metadata
                msg.save(update_fields=["status", "message_type", "content", "metadata"])
        if run.chat_id:
            Chat.objects.filter(pk=run.chat_id).update(last_message_at=now, updated_at=now)
    control.clear_stop(run.pk)
    groups = events.run_groups(run.pk, run.chat_id)
    with events.publisher() as pub:
        for seq, payload in published:
            wire_event = events.run_event(run.pk, seq, payload)
            for group in groups:
                pub.publish(group, wire_event)
    logger.info("run %s ended as %s from storage (%s)", run.pk, status, code or "-")
    return True


def fail_dead_run(run: Run) -> bool:
    return end_run_from_storage(
        run, status=Run.Status.FAILED, code=WORKER_LOST, message=worker_lost_message()
    )


def requeue(run: Run) -> bool:
    """Put a stale running run with no streamed token back to pending and dispatch it."""
    from agentstore.dispatch import dispatch
    from chats.tasks import run_execute_task

    updated = Run.objects.filter(
        pk=run.pk, status=Run.Status.RUNNING, heartbeat_at=run.heartbeat_at
    ).update(status=Run.Status.PENDING, current_step="")
    if updated:
        transaction.on_commit(lambda: dispatch(run_execute_task, str(run.pk)))
        logger.info("run %s re-queued after its worker stopped", run.pk)
    return bool(updated)


def runs_sweep(now: Any = None) -> dict[str, int]:
    """One sweep (see the module docstring); returns counts for logs and tests."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=control.stale_after())
    too_old = now - timedelta(seconds=float(getattr(settings, "RUN_HARD_TIME_LIMIT", 660)))
    pending_cutoff = now - timedelta(seconds=float(getattr(settings, "RUN_PENDING_TIMEOUT", 3600)))
    counts = {"requeued": 0, "failed": 0, "expired": 0}
    stuck = Run.objects.filter(status=Run.Status.RUNNING).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True) | Q(started_at__lt=too_old)
    )
    for run in stuck.order_by("created_at")[:200]:
        overdue = run.started_at is not None and run.started_at < too_old
        if not overdue and run.attempt < control.max_attempts() and not streamed(run):
            with transaction.atomic():
                counts["requeued"] += requeue(run)
            continue
        counts["failed"] += fail_dead_run(run)
    for run in Run.objects.filter(status=Run.Status.PENDING, created_at__lt=pending_cutoff)[:200]:
        counts["expired"] += end_run_from_storage(
            run,
            status=Run.Status.FAILED,
            code="not_started",
            message=_("The answer could not be started in time."),
            from_statuses=(Run.Status.PENDING,),
        )
    if any(counts.values()):
        logger.info("runs sweep: %s", counts)
    return counts


# --- embedded mode: the sweeper runs inside the web process --------------------------------


def redispatch_orphans(started_at: datetime) -> int:
    """Embedded mode keeps its queue in memory: runs still pending from before this
    process started were lost with the previous process. Dispatch them again."""
    from agentstore.dispatch import dispatch
    from chats.tasks import run_execute_task

    orphans = list(
        Run.objects.filter(status=Run.Status.PENDING, created_at__lt=started_at).values_list(
            "pk", flat=True
        )[:500]
    )
    for run_id in orphans:
        dispatch(run_execute_task, str(run_id))
    if orphans:
        logger.info("re-dispatched %d run(s) left pending by a restart", len(orphans))
    return len(orphans)


async def sweep_periodically() -> None:
    """The embedded stand-in for Celery beat, started from the ASGI lifespan: shortly
    after start-up it re-dispatches runs left pending by the previous process, then runs
    the sweeper on a task thread every ``RUN_SWEEP_INTERVAL`` seconds."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    from agentstore.dispatch import dispatch
    from chats.tasks import runs_sweep_task

    def orphans(started_at: datetime) -> None:
        try:
            redispatch_orphans(started_at)
        finally:
            connections.close_all()  # a throwaway thread: do not leave its connection open

    started_at = timezone.now()
    await asyncio.sleep(float(getattr(settings, "RUN_ORPHAN_DELAY", 1.0)))
    try:
        await sync_to_async(orphans, thread_sensitive=False)(started_at)
    except Exception:  # noqa: BLE001 - the server must keep serving
        logger.exception("re-dispatching orphaned runs failed")
    interval = float(getattr(settings, "RUN_SWEEP_INTERVAL", 30))
    while True:
        await asyncio.sleep(interval)
        try:
            future = dispatch(runs_sweep_task)
            if future is not None and hasattr(future, "result"):
                await asyncio.wrap_future(future)
        except Exception:  # noqa: BLE001 - keep sweeping
            logger.exception("runs sweep failed")


def start_embedded_sweeper() -> asyncio.Task | None:
    """Start :func:`sweep_periodically` on the running (server) loop in embedded mode."""
    from agentstore.dispatch import mode

    if mode() != "embedded" or not getattr(settings, "RUN_EMBEDDED_SWEEPER", True):
        return None
    return asyncio.get_running_loop().create_task(sweep_periodically(), name="runs-sweeper")
