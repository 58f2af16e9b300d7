"""Background tasks of the chats app. Tasks parse their arguments and call one service.

Every task has an explicit name (stable across refactors; it is what the broker stores)
and ``acks_late`` so a worker that dies mid-task leaves the message to be redelivered.
"""

from __future__ import annotations

import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_ready
from django.conf import settings
from django.utils.translation import gettext as _

from agentstore import dispatch
from chats import events


@shared_task(name="agentstore.ping", acks_late=True, ignore_result=True)
def ping(token: str, group: str) -> None:
    """Round trip through the background pipeline: answers with a PING event on ``group``."""
    events.publish(group, events.ping_event(token, mode=dispatch.execution_mode()))


# --- agent runs --------------------------------------------------------------------------
# The run tasks import the runtime lazily: the web process imports this module to dispatch,
# and must not pay for AgentScope. Celery workers preload it once per process (below).


@worker_init.connect
def _preload_runtime(**_kwargs) -> None:
    """Import AgentScope in the worker's main process before the pool forks, so every
    child shares it and no run pays the ~1.7 s import."""
    from chats.runtime.builder import ensure_agentscope
    from chats.runtime.loop import apply_switch_interval

    ensure_agentscope()
    import chats.runtime.execute  # noqa: F401 - and the rest of the run path

    apply_switch_interval()


@worker_ready.connect
def _settle_heap(**_kwargs) -> None:
    """Freeze the worker's start-up heap (AgentScope, the model SDKs, Django) out of the
    garbage collector once it is ready to take tasks (``agentstore.heap``)."""
    from agentstore import heap

    heap.settle("worker")


@shared_task(
    bind=True,
    name="agentstore.run_execute",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.RUN_SOFT_TIME_LIMIT + 30,
    time_limit=settings.RUN_HARD_TIME_LIMIT,
    max_retries=settings.RUN_MAX_RETRIES,
)
def run_execute_task(self, run_id: str) -> str:
    """Execute a run (``chats.runtime.execute.run_execute``).

    Retries: ``run_execute`` raises RetryRun (after putting the run back to pending) for a
    transient provider error before the first token; Celery schedules the next attempt
    with its backoff. Embedded/inline execution has no broker: the same thread waits and
    runs it again. A redelivered message for a run still running elsewhere (``busy``) is
    checked again once the heartbeat could have gone stale.
    """
    from chats.runtime import control
    from chats.runtime.errors import RetryRun
    from chats.runtime.execute import Outcome, run_execute

    while True:
        try:
            outcome = run_execute(run_id)
        except RetryRun as retry:
            if self.request.called_directly:
                time.sleep(retry.countdown)
                continue
            raise self.retry(countdown=retry.countdown, exc=retry) from None
        except SoftTimeLimitExceeded:
            from chats.models import Run
            from chats.runtime.recovery import end_run_from_storage

            run = Run.objects.filter(pk=run_id).first()
            if run is not None:
                end_run_from_storage(
                    run,
                    status=Run.Status.FAILED,
                    code="time_limit",
                    message=_("The answer took too long and was stopped."),
                )
            return "time_limit"
        redelivered = (self.request.delivery_info or {}).get("redelivered")
        if outcome == Outcome.BUSY and redelivered and not self.request.called_directly:
            # Bounded: the other execution ends, or its heartbeat goes stale and the
            # next look reclaims or fails the run.
            raise self.retry(countdown=control.stale_after(), max_retries=None)
        return str(outcome)


@shared_task(name="agentstore.runs_sweep", acks_late=True, ignore_result=True)
def runs_sweep_task() -> dict:
    """Fail or re-queue runs whose worker died; fail runs never started (periodic)."""
    from chats.runtime.recovery import runs_sweep

    return runs_sweep()


@shared_task(
    bind=True,
    name="agentstore.run_callback",
    acks_late=True,
    ignore_result=True,
    max_retries=3,
)
def run_callback_task(self, run_id: str) -> str:
    """POST a finished one-off run's result to its ``callback_url``."""
    from chats.services import CallbackFailed, run_callback_deliver

    try:
        return run_callback_deliver(run_id)
    except CallbackFailed as exc:
        if self.request.called_directly or self.request.retries >= self.max_retries:
            return "failed"
        raise self.retry(countdown=5 * 2**self.request.retries, exc=exc) from None


@shared_task(
    name="agentstore.persona_check",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.RUN_SOFT_TIME_LIMIT,
    time_limit=settings.RUN_HARD_TIME_LIMIT,
)
def persona_check_task(version_id: str, check_id: str) -> str:
    """Run a draft's persona check (``chats.persona_check.persona_check_execute``). A
    redelivered message finds the check running and does nothing; the check can be
    started again once it is older than the hard time limit."""
    from chats.persona_check import persona_check_execute, persona_check_fail

    try:
        return persona_check_execute(version_id, check_id)
    except SoftTimeLimitExceeded:
        persona_check_fail(
            version_id, check_id, message=_("The persona check took too long and was stopped.")
        )
        return "time_limit"
