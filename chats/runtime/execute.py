"""``run_execute(run_id)``: the one entry point that executes a run (the task calls it).

1. **Claim** with a conditional UPDATE (``pending`` → ``running``, ``attempt`` + 1): a
   second delivery of the same task is a no-op. A run still ``running`` whose heartbeat
   is stale lost its worker (a redelivered task after a crash): it is reclaimed when no
   token was streamed and attempts remain, otherwise failed (``recovery``). A run that
   is running with a fresh heartbeat is left alone (``BUSY``).
2. **Execute** on an event loop (``async_to_sync``: a private loop in Celery and inline;
   the server's loop in embedded mode). Database work goes back to the calling thread
   (thread-sensitive ``sync_to_async``), which owns the run's connection.
   RUN_STARTED → the strategy streams through the translator and the emitter → one
   terminal event. Meanwhile a supervisor polls the stop flag (every 0.1 s), enforces
   ``RUN_SOFT_TIME_LIMIT`` and writes the heartbeat (every ``RUN_HEARTBEAT_INTERVAL``).
3. **Finalise** in one transaction: the run (status, output, usage, cost, timings,
   error), its RunSteps, the assistant message (content, tool calls, usage, model, agent
   version; ``failed``/``error`` on failure) and the terminal event row — then the
   terminal event is published. Every run ends with exactly one terminal event:

   ============  =============================================================
   completed     RUN_FINISHED ``outcome {type: success}`` with ``usage``
   cancelled     RUN_FINISHED ``outcome {type: cancelled}`` (partial text kept)
   paused        RUN_FINISHED ``outcome {type: interrupt, interrupts: [...]}``
   failed        RUN_ERROR with ``code`` and a readable ``message``
   ============  =============================================================

Paused runs: a tool whose ``tool_approval`` is ``"ask"`` makes AgentScope park the reply.
The run ends its execution as ``paused`` with an AG-UI interrupt per tool call (reason
``tool_approval``) and the agent state saved in ``Run.state["agent_state"]``; nothing
waits, so no worker is held. Until the approval UI of a later issue resumes it, a paused
run stays paused (the sweeper ignores it; ``run_stop`` cancels it).

Retries: a transient provider error (429, 5xx, timeout, open circuit) before the first
token puts the run back to ``pending`` and raises :class:`RetryRun`; the task schedules
the next attempt with exponential backoff (at most ``RUN_MAX_RETRIES``). After the first
token, or when attempts are exhausted, the run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import DateTimeField, F, Max, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from agentstore import dispatch
from chats.models import Chat, ChatMessage, Run, RunEvent, RunStep
from chats.runtime import control, recovery
from chats.runtime.errors import RetryRun, RunFailure
from chats.runtime.loop import db_call

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    CLAIMED = "claimed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    RETRY = "retry"
    NOOP = "noop"  # not pending (already done, or taken by another delivery)
    BUSY = "busy"  # running elsewhere with a fresh heartbeat
    MISSING = "missing"
    LOST = "lost"  # taken away while executing (swept); the sweeper ended it


@dataclass
class Claim:
    outcome: Outcome
    run: Run | None = None


def claim_run(run_id: str) -> Claim:
    from chats.runtime import claim_sql

    now = timezone.now()
    if claim_sql.supported():
        # One statement: the conditional UPDATE and everything the run needs to start.
        run = claim_sql.claim_and_load(run_id, now=now)
        if run is not None:
            if run.attempt > 1:
                run.last_seq = RunEvent.objects.filter(run=run).aggregate(m=Max("seq"))["m"] or 0
            return Claim(Outcome.CLAIMED, run)
        claimed = 0
    else:
        claimed = Run.objects.filter(pk=run_id, status=Run.Status.PENDING).update(
            status=Run.Status.RUNNING,
            attempt=F("attempt") + 1,
            started_at=Coalesce("started_at", Value(now, output_field=DateTimeField())),
            heartbeat_at=now,
        )
    if not claimed:
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            return Claim(Outcome.MISSING)
        if run.status != Run.Status.RUNNING:
            return Claim(Outcome.NOOP, run)
        stale = run.heartbeat_at is None or (now - run.heartbeat_at).total_seconds() > (
            control.stale_after()
        )
        if not stale:
            return Claim(Outcome.BUSY, run)
        if recovery.streamed(run) or run.attempt >= control.max_attempts():
            recovery.fail_dead_run(run)
            return Claim(Outcome.FAILED, run)
        reclaimed = Run.objects.filter(
            pk=run_id, status=Run.Status.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(attempt=F("attempt") + 1, heartbeat_at=now)
        if not reclaimed:
            return Claim(Outcome.NOOP, run)
        logger.info("run %s reclaimed after its worker stopped", run_id)
    from chats.runtime.builder import RUN_DEFERRED, RUN_RELATIONS

    run = Run.objects.select_related(*RUN_RELATIONS).defer(*RUN_DEFERRED).get(pk=run_id)
    if run.attempt > 1:
        run.last_seq = RunEvent.objects.filter(run=run).aggregate(m=Max("seq"))["m"] or 0
    return Claim(Outcome.CLAIMED, run)


@contextmanager
def relaxed_commits() -> Iterator[None]:
    """While a run streams, its commits (the claim, event batches, heartbeats) do not
    wait for the WAL flush (PostgreSQL ``synchronous_commit = off``): ~4 ms per commit on
    a busy disk, several times on the way to the first token. A database crash may lose
    the last fraction of a second of those writes — never corrupt anything — and the
    sweeper ends such a run. The final state of the run is committed durably
    (:func:`durable`). Other databases: no-op."""
    from chats.runtime.loop import pooled_connections

    if connection.vendor != "postgresql" or pooled_connections():
        # A pooled connection goes back to the pool between a run's calls: a session
        # setting would leak to whoever takes it next.
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def durable() -> None:
    """Inside ``transaction.atomic()``: this transaction's commit waits for the disk."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO ON")


def run_execute(run_id: str) -> Outcome:
    """Execute run ``run_id`` (see the module docstring). Raises :class:`RetryRun`."""
    from chats.runtime.loop import release_run_connection

    try:
        with relaxed_commits():
            return _run_execute(run_id)
    finally:
        release_run_connection()


def _run_execute(run_id: str) -> Outcome:
    claim = claim_run(str(run_id))
    if claim.outcome != Outcome.CLAIMED:
        if claim.outcome not in (Outcome.NOOP, Outcome.FAILED):
            logger.info("run %s not executed: %s", run_id, claim.outcome)
        return claim.outcome
    from chats.runtime.builder import ensure_agentscope

    ensure_agentscope()  # the 1.7 s import happens here, never on an event loop
    from agentstore.dispatch import execution_mode
    from chats.runtime.loop import release_run_connection, runs_on, worker_loop

    # Asked here, on the run's own thread: Celery's current task is thread-local.
    execution = Execution(claim.run, mode=execution_mode())
    shared = worker_loop() if execution_mode() == "celery" else None
    if shared is not None:
        execution.prebuild(shared)
    release_run_connection()
    with runs_on(shared):
        return async_to_sync(execution.main)()


# --- one execution -------------------------------------------------------------------------


@dataclass
class Ending:
    outcome: Outcome
    code: str = ""
    message: str = ""
    retry_in: float | None = None
    interrupts: list[dict[str, Any]] = field(default_factory=list)


def _scrubbed_traceback(exc: BaseException, secrets: list[str]) -> str:
    from integrations.llm.base import scrub

    text = "".join(traceback.format_exception(exc))
    return scrub(text, secrets, limit=6000)


def _backoff(attempt: int, retry_after: float | None) -> float:
    base = control.setting("RUN_RETRY_BASE_DELAY", 2.0)
    cap = control.setting("RUN_RETRY_MAX_DELAY", 60.0)
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
    if retry_after:
        delay = max(delay, min(cap, retry_after))
    return round(delay, 2)


class Execution:
    """The async body of one run execution (see the module docstring)."""

    def __init__(self, run: Run, *, mode: str = "inline") -> None:
        self.run = run
        self.mode = mode
        self.run_id = str(run.id)
        self.ctx: Any = None
        self.chat_model: Any = None
        self.translator: Any = None
        self.emitter: Any = None
        self.strategy: Any = None
        self.stop_reason: str | None = None
        self.first_token_at = None
        self.shared_loop: asyncio.AbstractEventLoop | None = None
        self._secrets: list[str] = []
        self._prebuilt = False
        self._prebuild_error: BaseException | None = None

    def prebuild(self, loop: asyncio.AbstractEventLoop) -> None:
        """Prepare the run and build its model now, on the run's own thread, for the shared
        ``loop`` it is about to execute on — rather than from the loop through a hop back to
        this thread (two thread hand-offs on the way to the first token, each waiting for
        the GIL while the loop streams other runs). A failure is kept and raised where
        :meth:`_execute` would have met it, after ``RUN_STARTED``, so it ends the run the
        same way."""
        self.shared_loop = loop
        try:
            self._prepare_and_build()
        except Exception as exc:  # noqa: BLE001 - raised again by _execute
            self._prebuild_error = exc
        self._prebuilt = True

    async def main(self) -> Outcome:
        from chats.runtime.emitter import RunEmitter
        from chats.runtime.loop import owns_channel_connections
        from chats.runtime.translate import Translator

        loop = asyncio.get_running_loop()
        from chats.runtime.event_store import store_for

        self.shared_loop = None if owns_channel_connections(loop) else loop
        run = self.run
        direct = store_for(loop, mode=self.mode) if self.shared_loop is not None else None
        self.emitter = RunEmitter(
            run_id=self.run_id,
            chat_id=str(run.chat_id) if run.chat_id else None,
            last_seq=run.last_seq,
            flush_interval=control.setting("RUN_EVENT_FLUSH_INTERVAL", 0.04),
            astore=direct.store if direct is not None else None,
        )
        self.emitter.start()
        self.translator = Translator(
            self.emitter.emit,
            run_id=self.run_id,
            message_id=str(run.assistant_message_id or run.id),
            on_first_token=self._on_first_token,
        )
        try:
            await self._begin()
            ending = await self._execute()
        finally:
            if self.chat_model is not None:
                from integrations.llm import aclose_chat_model

                try:
                    await aclose_chat_model(self.chat_model)
                except Exception:  # noqa: BLE001 - closing must not mask the outcome
                    logger.warning("run %s: closing the model client failed", self.run_id)
        try:
            return await self._finish(ending)
        finally:
            from chats.runtime.loop import owns_channel_connections

            if owns_channel_connections(asyncio.get_running_loop()):
                from chats import events

                await events.aclose_connections()

    # --- phases -------------------------------------------------------------------------

    async def _begin(self) -> None:
        from ag_ui import core as agui

        from chats.runtime.recovery import dangling_closers
        from chats.runtime.translate import now_ms, wire

        thread_id = str(self.run.chat_id or self.run.id)
        if self.run.last_seq == 0:
            self.emitter.emit(
                wire(
                    agui.RunStartedEvent(
                        thread_id=thread_id, run_id=self.run_id, timestamp=now_ms()
                    )
                )
            )
            return
        stored = await db_call(
            lambda: list(
                RunEvent.objects.filter(run_id=self.run_id)
                .order_by("seq")
                .values_list("payload", flat=True)
            )
        )()
        for closer in dangling_closers(stored):
            self.emitter.emit({**closer, "timestamp": now_ms()})
        self.emitter.emit(
            wire(
                agui.CustomEvent(
                    name="run_attempt",
                    value={"attempt": self.run.attempt},
                    timestamp=now_ms(),
                )
            )
        )

    async def _execute(self) -> Ending:
        from integrations.llm import ProviderError

        try:
            if not self._prebuilt:
                # One hop to the run's database thread for both (each hop costs two thread
                # hand-offs on the way to the first token).
                await db_call(self._prepare_and_build)()
            elif self._prebuild_error is not None:
                error, self._prebuild_error = self._prebuild_error, None
                raise error
            self.translator.step_offset = self.ctx.step_offset
            key = getattr(getattr(self.chat_model, "credential", None), "api_key", None)
            if hasattr(key, "get_secret_value"):
                key = key.get_secret_value()
            self._secrets = [key] if isinstance(key, str) and key else []
            from chats.runtime.strategies import strategy_for

            self.strategy = strategy_for(self.ctx, self.chat_model, self.translator)
            from integrations.llm.openai_stream import stream_hold

            # The model stream may hold text back while the emitter would hold it anyway
            # (RUN_STREAM_HOLD). Reset afterwards: async_to_sync copies context changes
            # back to the caller.
            hold = stream_hold.set(
                self.emitter.downstream_wait if getattr(settings, "RUN_STREAM_HOLD", True) else None
            )
            try:
                return await self._supervise(asyncio.ensure_future(self.strategy.run()))
            finally:
                stream_hold.reset(hold)
        except RunFailure as exc:
            return self._failure(exc.code, exc.message, exc.transient, exc.retry_after)
        except ProviderError as exc:
            return self._failure(exc.code, exc.message, exc.transient, exc.retry_after)
        except Exception as exc:  # noqa: BLE001 - every run must end with a terminal event
            return self._unexpected(exc)

    def _unexpected(self, exc: BaseException) -> Ending:
        logger.error(
            "run %s failed unexpectedly:\n%s", self.run_id, _scrubbed_traceback(exc, self._secrets)
        )
        return Ending(
            Outcome.FAILED, "internal_error", _("The agent failed unexpectedly. Try again.")
        )

    def _prepare_and_build(self) -> None:
        self.ctx = self._prepare()
        self.chat_model = self._build_model()

    def _prepare(self) -> Any:
        from chats.runtime.builder import prepare

        return prepare(self.run)

    def _build_model(self) -> Any:
        from chats.runtime.builder import build_chat_model_sync

        return build_chat_model_sync(self.ctx, shared_on=self.shared_loop)

    def _on_first_token(self) -> None:
        # Written with the next heartbeat and at the end, not on the hot path; recovery
        # also sees streamed tokens in the stored events (``recovery.streamed``).
        self.first_token_at = timezone.now()

    async def _supervise(self, task: asyncio.Future) -> Ending:
        """Wait for the strategy; meanwhile watch the stop flag, the soft time limit and
        write the heartbeat."""
        from integrations.llm import ProviderError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + control.setting("RUN_SOFT_TIME_LIMIT", 600)
        beat_every = control.heartbeat_interval()
        next_beat = loop.time() + beat_every
        watcher = control.StopWatcher.current()
        stop = asyncio.ensure_future(watcher.watch(self.run_id).wait())
        try:
            while not task.done():
                timeout = max(0.0, min(next_beat, deadline) - loop.time())
                await asyncio.wait({task, stop}, timeout=timeout, return_when="FIRST_COMPLETED")
                if task.done():
                    break
                if stop.done():
                    self.stop_reason = "stopped"
                elif loop.time() >= deadline:
                    self.stop_reason = "time_limit"
                elif loop.time() >= next_beat:
                    next_beat = loop.time() + beat_every
                    if not await db_call(self._heartbeat)():
                        self.stop_reason = "lost"
                if self.stop_reason:
                    task.cancel()
                    await asyncio.wait({task})
                    break
        finally:
            watcher.unwatch(self.run_id)
            stop.cancel()
        if self.stop_reason == "stopped":
            return Ending(Outcome.CANCELLED)
        if self.stop_reason == "time_limit":
            return Ending(
                Outcome.FAILED,
                "time_limit",
                _("The answer took too long and was stopped."),
            )
        if self.stop_reason == "lost":
            return Ending(Outcome.LOST)
        if task.cancelled():
            # Cancelled from outside (the loop is shutting down): treat as a stop.
            return Ending(Outcome.CANCELLED)
        exc = task.exception()
        if exc is None:
            if self.strategy.paused:
                return Ending(Outcome.PAUSED, interrupts=self.translator.pending_approvals)
            return Ending(Outcome.COMPLETED)
        if isinstance(exc, ProviderError):
            return self._failure(exc.code, exc.message, exc.transient, exc.retry_after)
        if isinstance(exc, RunFailure):
            return self._failure(exc.code, exc.message, exc.transient, exc.retry_after)
        return self._unexpected(exc)

    def _failure(
        self, code: str, message: str, transient: bool, retry_after: float | None
    ) -> Ending:
        retryable = (
            transient
            and not self.translator.first_token_seen
            and self.run.attempt < control.max_attempts()
        )
        if retryable:
            return Ending(
                Outcome.RETRY, code, message, retry_in=_backoff(self.run.attempt, retry_after)
            )
        return Ending(Outcome.FAILED, code or "provider_error", message)

    def _heartbeat(self) -> bool:
        fields: dict[str, Any] = {
            "heartbeat_at": timezone.now(),
            "last_seq": self.emitter.seq,
            "current_step": self.translator.current_step,
        }
        if self.first_token_at is not None:
            fields["first_token_at"] = self.first_token_at
        if self.ctx is not None:
            fields["llm_model"] = self.ctx.llm_model
        return bool(Run.objects.filter(pk=self.run_id, status=Run.Status.RUNNING).update(**fields))

    # --- the end --------------------------------------------------------------------------

    async def _finish(self, ending: Ending) -> Outcome:
        from ag_ui import core as agui

        from chats.runtime.translate import now_ms, wire

        translator = self.translator
        status_for = {
            Outcome.COMPLETED: "completed",
            Outcome.PAUSED: "completed",
            Outcome.CANCELLED: "cancelled",
        }
        translator.close_open(status_for.get(ending.outcome, "failed"), error=ending.message)
        usage = translator.usage()
        token_usage = [
            agui.TokenUsage(
                provider=getattr(self.ctx.llm_model, "provider_type", None) if self.ctx else None,
                model=getattr(self.ctx.llm_model, "model_name", None) if self.ctx else None,
                input_tokens=usage["input_tokens"],
                output_tokens=usage["output_tokens"],
                total_tokens=usage["total_tokens"],
            )
        ]
        thread_id = str(self.run.chat_id or self.run.id)
        if ending.outcome == Outcome.RETRY:
            translator.close_messages()
            self.emitter.emit(
                wire(
                    agui.CustomEvent(
                        name="run_retry",
                        value={
                            "attempt": self.run.attempt,
                            "retryInSeconds": ending.retry_in,
                            "code": ending.code,
                            "message": ending.message,
                        },
                        timestamp=now_ms(),
                    )
                )
            )
            await self.emitter.close()
            requeued = await db_call(self._store_retry)(ending)
            if requeued:
                raise RetryRun(self.run_id, countdown=ending.retry_in or 1.0, code=ending.code)
            return Outcome.LOST
        if ending.outcome == Outcome.LOST:
            await self.emitter.close()
            logger.warning("run %s was ended elsewhere while executing", self.run_id)
            return Outcome.LOST
        if ending.outcome == Outcome.FAILED:
            terminal = agui.RunErrorEvent(
                message=ending.message, code=ending.code, usage=token_usage, timestamp=now_ms()
            )
        elif ending.outcome == Outcome.CANCELLED:
            terminal = agui.RunFinishedEvent(
                thread_id=thread_id,
                run_id=self.run_id,
                outcome=agui.RunFinishedCancelledOutcome(),
                result={"status": "cancelled", "messageId": translator.message_id},
                usage=token_usage,
                timestamp=now_ms(),
            )
        elif ending.outcome == Outcome.PAUSED:
            terminal = agui.RunFinishedEvent(
                thread_id=thread_id,
                run_id=self.run_id,
                outcome=agui.RunFinishedInterruptOutcome(
                    interrupts=[
                        agui.Interrupt(
                            id=item["tool_call_id"],
                            reason="tool_approval",
                            tool_call_id=item["tool_call_id"],
                            message=_("%(tool)s needs your approval before it runs.")
                            % {"tool": item["name"]},
                        )
                        for item in ending.interrupts
                    ]
                ),
                result={"status": "paused", "messageId": translator.message_id},
                usage=token_usage,
                timestamp=now_ms(),
            )
        else:
            terminal = agui.RunFinishedEvent(
                thread_id=thread_id,
                run_id=self.run_id,
                outcome=agui.RunFinishedSuccessOutcome(),
                result={"status": "completed", "messageId": translator.message_id},
                usage=token_usage,
                timestamp=now_ms(),
            )
        await self.emitter.flush()
        payload = wire(terminal)
        seq = self.emitter.next_seq()
        stored = await db_call(self._store_final)(ending, seq, payload)
        if stored:
            await self.emitter.publish_stored(seq, payload)
        await self.emitter.close()
        return ending.outcome if stored else Outcome.LOST

    def _step_rows(self, llm_model: Any) -> list[RunStep]:
        rows = []
        for step in self.translator.steps:
            cost = Decimal("0")
            if step.tokens and llm_model is not None:
                cost = llm_model.estimate_cost(
                    input_tokens=step.tokens.get("input_tokens", 0),
                    output_tokens=step.tokens.get("output_tokens", 0),
                )
            rows.append(
                RunStep(
                    run_id=self.run_id,
                    index=step.index,
                    kind=step.kind,
                    name=step.name[:200],
                    status=step.status,
                    input=step.input,
                    output=step.output,
                    started_at=step.started_at,
                    finished_at=step.finished_at,
                    duration_ms=step.duration_ms,
                    retries=step.retries,
                    tokens=step.tokens,
                    cost=cost,
                    error=step.error[:2000],
                )
            )
        return rows

    def _store_retry(self, ending: Ending) -> bool:
        llm_model = self.ctx.llm_model if self.ctx else None
        with transaction.atomic():
            durable()
            updated = Run.objects.filter(pk=self.run_id, status=Run.Status.RUNNING).update(
                status=Run.Status.PENDING,
                error_code=ending.code,
                error_message=ending.message,
                last_seq=self.emitter.seq,
                current_step="",
                heartbeat_at=None,
            )
            if updated:
                RunStep.objects.bulk_create(self._step_rows(llm_model))
        logger.info(
            "run %s: %s before the first token; retry in %.1fs",
            self.run_id,
            ending.code,
            ending.retry_in or 0,
        )
        return bool(updated)

    def _store_final(self, ending: Ending, seq: int, payload: dict[str, Any]) -> bool:
        now = timezone.now()
        translator = self.translator
        usage = translator.usage()
        llm_model = self.ctx.llm_model if self.ctx else None
        cost = (
            llm_model.estimate_cost(
                input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"]
            )
            if llm_model is not None
            else Decimal("0")
        )
        answer = translator.answer
        fields: dict[str, Any] = {
            "status": ending.outcome.value,
            "output": answer,
            "usage": usage,
            "cost": cost,
            "error_code": ending.code if ending.outcome == Outcome.FAILED else "",
            "error_message": ending.message if ending.outcome == Outcome.FAILED else "",
            "finished_at": now,
            "heartbeat_at": now,
            "last_seq": seq,
            "current_step": "",
        }
        if self.first_token_at is not None:
            fields["first_token_at"] = self.first_token_at
        if llm_model is not None:
            fields["llm_model"] = llm_model
        if ending.outcome == Outcome.PAUSED and self.strategy is not None:
            fields["state"] = {
                "agent_state": self.strategy.paused_state,
                "pending_approvals": ending.interrupts,
            }
            fields["finished_at"] = None
        with transaction.atomic():
            durable()
            updated = Run.objects.filter(pk=self.run_id, status=Run.Status.RUNNING).update(**fields)
            if not updated:
                return False
            RunEvent.objects.create(
                run_id=self.run_id, seq=seq, type=payload["type"], payload=payload
            )
            RunStep.objects.bulk_create(self._step_rows(llm_model))
            if self.run.assistant_message_id:
                self._store_message(ending, answer, usage, llm_model)
            if self.run.chat_id:
                Chat.objects.filter(pk=self.run.chat_id).update(last_message_at=now, updated_at=now)
            if self.run.callback_url and ending.outcome != Outcome.PAUSED:
                from chats.tasks import run_callback_task

                run_id = self.run_id
                transaction.on_commit(lambda: dispatch.dispatch(run_callback_task, run_id))
        control.clear_stop(self.run_id)
        return True

    def _store_message(
        self, ending: Ending, answer: str, usage: dict[str, int], llm_model: Any
    ) -> None:
        message = (
            ChatMessage.objects.select_for_update().filter(pk=self.run.assistant_message_id).first()
        )
        if message is None:
            return
        metadata = dict(message.metadata or {})
        metadata.update(
            {
                "run_id": self.run_id,
                "tool_calls": self.translator.tool_calls_metadata(),
                "usage": usage,
                "model": getattr(llm_model, "display_name", "") if llm_model else "",
                "agent_version": self.ctx.version_label if self.ctx else "",
            }
        )
        message.content = answer
        message.status = ChatMessage.Status.SENT
        message.message_type = ChatMessage.MessageType.TEXT
        if ending.outcome == Outcome.FAILED:
            metadata["error"] = {"code": ending.code, "message": ending.message}
            message.status = ChatMessage.Status.FAILED
            message.message_type = ChatMessage.MessageType.ERROR
        elif ending.outcome == Outcome.CANCELLED:
            metadata["cancelled"] = True
        elif ending.outcome == Outcome.PAUSED:
            metadata["pending_approval"] = ending.interrupts
        message.metadata = metadata
        update_fields = ["content", "status", "message_type", "metadata"]
        if message.agent_version_id is None:
            message.agent_version_id = self.run.agent_version_id
            update_fields.append("agent_version")
        message.save(update_fields=update_fields)
