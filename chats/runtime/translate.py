"""AgentScope 2.x stream events → AG-UI events (``ag_ui.core``), RunStep records and the
answer text.

The mapping (SPEC §5.3):

=============================  ======================================================
AgentScope                     AG-UI
=============================  ======================================================
MODEL_CALL_START / _END        STEP_STARTED / STEP_FINISHED ``model_call:<n>`` (or
                               ``plan:<n>`` / ``critique:<n>`` in those phases)
TEXT_BLOCK_* (answer phase)    TEXT_MESSAGE_START / CONTENT / END
TEXT_BLOCK_* (other phases),   REASONING_START, REASONING_MESSAGE_START / CONTENT / END,
THINKING_BLOCK_*               REASONING_END
TOOL_CALL_START / DELTA / END  TOOL_CALL_START / ARGS / END
TOOL_RESULT_START … END        STEP_STARTED ``tool_call:<n>`` (``retrieval:<n>``),
                               TOOL_CALL_RESULT, STEP_FINISHED
REQUIRE_USER_CONFIRM           recorded: the run pauses (``pending_approvals``)
=============================  ======================================================

The answer is ONE message whose id is the assistant ChatMessage's id (the run's id for
one-off runs). When tool calls interrupt it, it arrives in several TEXT_MESSAGE_START …
END segments with the same id, and every segment after the first begins with a "\\n\\n"
CONTENT delta — so the concatenation of a run's TEXT_MESSAGE_CONTENT deltas is exactly
the stored answer. RUN_STARTED and the terminal event are emitted by the executor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ag_ui import core as agui
from django.utils import timezone

from chats.runtime.tools import RETRIEVAL_TOOLS

SEGMENT_SEPARATOR = "\n\n"
MAX_TOOL_OUTPUT_EVENT = 16_000  # characters of a tool result sent in TOOL_CALL_RESULT
MAX_TOOL_OUTPUT_STORED = 4_000  # characters kept in the message metadata / RunStep

Emit = Callable[[dict[str, Any]], None]


def wire(event: agui.BaseEvent) -> dict[str, Any]:
    """An AG-UI event in the camelCase wire format AG-UI clients parse."""
    return event.model_dump(mode="json", by_alias=True, exclude_none=True)


def now_ms() -> int:
    return int(time.time() * 1000)


class Phase:
    """What the model's text is in the current part of a strategy."""

    ANSWER = "answer"  # streamed to the user as the answer (TEXT_MESSAGE_*)
    REASONING = "reasoning"  # intermediate work: a plan, a draft, a critique (REASONING_*)


@dataclass
class StepRecord:
    index: int
    kind: str
    name: str
    status: str = "running"
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=timezone.now)
    finished_at: datetime | None = None
    duration_ms: int | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    error: str = ""
    retries: int = 0
    _t0: float = field(default_factory=time.monotonic, repr=False)

    @property
    def step_name(self) -> str:
        return f"{self.kind}:{self.index}"

    def finish(self, status: str, *, error: str = "") -> None:
        self.status = status
        self.error = error
        self.finished_at = timezone.now()
        self.duration_ms = int((time.monotonic() - self._t0) * 1000)


@dataclass
class ToolCallRecord:
    id: str
    name: str
    args_text: str = ""
    input: Any = None
    output: str = ""
    status: str = "pending"
    duration_ms: int | None = None

    def as_metadata(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "input": self.input if self.input is not None else self.args_text,
            "output": self.output[:MAX_TOOL_OUTPUT_STORED],
            "status": self.status,
            "duration_ms": self.duration_ms,
        }


_TOOL_STATUS = {
    "success": "completed",
    "error": "failed",
    "denied": "failed",
    "interrupted": "cancelled",
}


def _parse_args(text: str) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


class Translator:
    """Feeds on AgentScope events, emits AG-UI event dicts through ``emit``."""

    def __init__(
        self,
        emit: Emit,
        *,
        run_id: str,
        message_id: str,
        on_first_token: Callable[[], None] | None = None,
    ) -> None:
        self._emit_dict = emit
        self.run_id = run_id
        self.message_id = message_id
        self._on_first_token = on_first_token
        self.first_token_seen = False
        self.step_offset = 0  # steps of earlier attempts of the run
        self.phase = Phase.ANSWER
        self.model_step_kind = "model_call"
        self.steps: list[StepRecord] = []
        self.tool_calls: dict[str, ToolCallRecord] = {}
        self.answer_parts: list[str] = []
        self.pending_approvals: list[dict[str, Any]] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.last_reply_reason: str | None = None
        self._phase_text: list[str] = []
        self._text_open = False
        self._answer_has_text = False
        self._reasoning_id: str | None = None
        self._reasoning_count = 0
        self._thinking_id: str | None = None
        self._open_tool_args: set[str] = set()
        self._model_step: StepRecord | None = None
        self._tool_steps: dict[str, StepRecord] = {}
        self._handlers: dict[str, Callable[[Any], None]] = {
            "MODEL_CALL_START": self._model_call_start,
            "MODEL_CALL_END": self._model_call_end,
            "TEXT_BLOCK_DELTA": self._text_delta,
            "TEXT_BLOCK_END": self._text_end,
            "THINKING_BLOCK_DELTA": self._thinking_delta,
            "THINKING_BLOCK_END": self._thinking_end,
            "TOOL_CALL_START": self._tool_call_start,
            "TOOL_CALL_DELTA": self._tool_call_delta,
            "TOOL_CALL_END": self._tool_call_end,
            "TOOL_RESULT_START": self._tool_result_start,
            "TOOL_RESULT_TEXT_DELTA": self._tool_result_text,
            "TOOL_RESULT_DATA_DELTA": self._tool_result_data,
            "TOOL_RESULT_END": self._tool_result_end,
            "REQUIRE_USER_CONFIRM": self._require_confirm,
            "REQUIRE_EXTERNAL_EXECUTION": self._require_confirm,
            "REPLY_END": self._reply_end,
        }

    # --- public -------------------------------------------------------------------------

    @property
    def answer(self) -> str:
        return "".join(self.answer_parts)

    @property
    def current_step(self) -> str:
        step = self._model_step or next(reversed(self._tool_steps.values()), None)
        return f"{step.step_name} {step.name}"[:200] if step else ""

    def begin(self, phase: str, *, step_kind: str = "model_call") -> None:
        """Start a part of a strategy: where text goes and how model calls are recorded."""
        self.close_messages()
        self.phase = phase
        self.model_step_kind = step_kind
        self._phase_text = []

    def end(self) -> str:
        """Finish the current part; returns the text the model produced in it."""
        self.close_messages()
        text = "".join(self._phase_text)
        self._phase_text = []
        return text

    def feed(self, event: Any) -> None:
        handler = self._handlers.get(getattr(event, "type", ""))
        if handler is not None:
            handler(event)

    def close_open(self, status: str, *, error: str = "") -> None:
        """On failure or cancellation: end whatever is still open, in AG-UI order."""
        self.close_messages()
        for tool_call_id in sorted(self._open_tool_args):
            self._emit(agui.ToolCallEndEvent(tool_call_id=tool_call_id))
        self._open_tool_args.clear()
        for tool_call_id, step in list(self._tool_steps.items()):
            record = self.tool_calls.get(tool_call_id)
            if record is not None:
                record.status = status
            self._finish_step(step, status, error=error)
        self._tool_steps.clear()
        if self._model_step is not None:
            self._finish_step(self._model_step, status, error=error)
            self._model_step = None

    def close_messages(self) -> None:
        if self._text_open:
            self._emit(agui.TextMessageEndEvent(message_id=self.message_id))
            self._text_open = False
        self._close_reasoning()
        self._close_thinking()

    def usage(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    def tool_calls_metadata(self) -> list[dict[str, Any]]:
        return [record.as_metadata() for record in self.tool_calls.values()]

    # --- helpers --------------------------------------------------------------------------

    def _emit(self, event: agui.BaseEvent) -> None:
        if event.timestamp is None:
            event.timestamp = now_ms()
        self._emit_dict(wire(event))

    def _emit_delta(self, kind: str, key: str, ident: str, delta: str) -> None:
        """The per-token hot path: the wire dict of a content/args delta built directly
        (what ``wire()`` of the ag_ui event gives — ``test_fast_deltas_match_ag_ui`` —
        at a tenth of the cost of a pydantic model and its serialiser per token)."""
        self._emit_dict({"type": kind, "timestamp": now_ms(), key: ident, "delta": delta})

    def _first_token(self) -> None:
        if not self.first_token_seen:
            self.first_token_seen = True
            if self._on_first_token is not None:
                self._on_first_token()

    def _start_step(self, kind: str, name: str, step_input: dict[str, Any]) -> StepRecord:
        index = self.step_offset + len(self.steps) + 1
        step = StepRecord(index=index, kind=kind, name=name, input=step_input)
        self.steps.append(step)
        self._emit(
            agui.StepStartedEvent(step_name=step.step_name, metadata={"kind": kind, "name": name})
        )
        return step

    def _finish_step(self, step: StepRecord, status: str, *, error: str = "") -> None:
        step.finish(status, error=error)
        metadata: dict[str, Any] = {"status": status, "durationMs": step.duration_ms}
        if step.tokens:
            metadata["tokens"] = step.tokens
        self._emit(agui.StepFinishedEvent(step_name=step.step_name, metadata=metadata))

    def _close_reasoning(self) -> None:
        if self._reasoning_id is not None:
            self._emit(agui.ReasoningMessageEndEvent(message_id=self._reasoning_id))
            self._emit(agui.ReasoningEndEvent(message_id=self._reasoning_id))
            self._reasoning_id = None

    def _close_thinking(self) -> None:
        if self._thinking_id is not None:
            self._emit(agui.ReasoningMessageEndEvent(message_id=self._thinking_id))
            self._emit(agui.ReasoningEndEvent(message_id=self._thinking_id))
            self._thinking_id = None

    def _open_reasoning_id(self) -> str:
        self._reasoning_count += 1
        reasoning_id = f"{self.run_id}:reasoning:{self._reasoning_count}"
        self._emit(agui.ReasoningStartEvent(message_id=reasoning_id))
        self._emit(agui.ReasoningMessageStartEvent(message_id=reasoning_id, role="reasoning"))
        return reasoning_id

    # --- handlers ---------------------------------------------------------------------------

    def _model_call_start(self, event: Any) -> None:
        if self._model_step is not None:  # defensive: a call that never ended
            self._finish_step(self._model_step, "failed")
        self._model_step = self._start_step(
            self.model_step_kind, getattr(event, "model_name", "") or "model", {}
        )

    def _model_call_end(self, event: Any) -> None:
        self.close_messages()
        input_tokens = int(getattr(event, "input_tokens", 0) or 0)
        output_tokens = int(getattr(event, "output_tokens", 0) or 0)
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        step = self._model_step
        if step is None:
            return
        step.tokens = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        reason = str(getattr(event, "finished_reason", "") or "")
        step.output = {"finished_reason": reason}
        status = "cancelled" if reason == "interrupted" else "completed"
        self._finish_step(step, status)
        self._model_step = None

    def _text_delta(self, event: Any) -> None:
        delta = event.delta or ""
        if not delta:
            return
        self._first_token()
        self._phase_text.append(delta)
        if self.phase == Phase.ANSWER:
            if not self._text_open:
                self._emit(agui.TextMessageStartEvent(message_id=self.message_id, role="assistant"))
                self._text_open = True
                if self._answer_has_text:
                    self.answer_parts.append(SEGMENT_SEPARATOR)
                    self._emit(
                        agui.TextMessageContentEvent(
                            message_id=self.message_id, delta=SEGMENT_SEPARATOR
                        )
                    )
            self._answer_has_text = True
            self.answer_parts.append(delta)
            self._emit_delta("TEXT_MESSAGE_CONTENT", "messageId", self.message_id, delta)
            return
        if self._reasoning_id is None:
            self._reasoning_id = self._open_reasoning_id()
        self._emit_delta("REASONING_MESSAGE_CONTENT", "messageId", self._reasoning_id, delta)

    def _text_end(self, event: Any) -> None:
        if self.phase == Phase.ANSWER:
            if self._text_open:
                self._emit(agui.TextMessageEndEvent(message_id=self.message_id))
                self._text_open = False
        else:
            self._close_reasoning()

    def _thinking_delta(self, event: Any) -> None:
        delta = event.delta or ""
        if not delta:
            return
        self._first_token()
        if self._thinking_id is None:
            self._thinking_id = self._open_reasoning_id()
        self._emit_delta("REASONING_MESSAGE_CONTENT", "messageId", self._thinking_id, delta)

    def _thinking_end(self, event: Any) -> None:
        self._close_thinking()

    def _tool_call_start(self, event: Any) -> None:
        self._first_token()
        # Older AG-UI verifiers refuse a tool call inside an open text message.
        if self._text_open:
            self._emit(agui.TextMessageEndEvent(message_id=self.message_id))
            self._text_open = False
        self._close_reasoning()
        self.tool_calls[event.tool_call_id] = ToolCallRecord(
            id=event.tool_call_id, name=event.tool_call_name
        )
        self._open_tool_args.add(event.tool_call_id)
        self._emit(
            agui.ToolCallStartEvent(
                tool_call_id=event.tool_call_id,
                tool_call_name=event.tool_call_name,
                parent_message_id=self.message_id,
            )
        )

    def _tool_call_delta(self, event: Any) -> None:
        record = self.tool_calls.get(event.tool_call_id)
        if record is None or not event.delta:
            return
        record.args_text += event.delta
        self._emit_delta("TOOL_CALL_ARGS", "toolCallId", event.tool_call_id, event.delta)

    def _tool_call_end(self, event: Any) -> None:
        record = self.tool_calls.get(event.tool_call_id)
        if record is not None:
            record.input = _parse_args(record.args_text)
        if event.tool_call_id in self._open_tool_args:
            self._open_tool_args.discard(event.tool_call_id)
            self._emit(agui.ToolCallEndEvent(tool_call_id=event.tool_call_id))

    def _tool_result_start(self, event: Any) -> None:
        record = self.tool_calls.setdefault(
            event.tool_call_id, ToolCallRecord(id=event.tool_call_id, name=event.tool_call_name)
        )
        record.status = "running"
        kind = "retrieval" if event.tool_call_name in RETRIEVAL_TOOLS else "tool_call"
        arguments = record.input if record.input is not None else _parse_args(record.args_text)
        self._tool_steps[event.tool_call_id] = self._start_step(
            kind, event.tool_call_name, {"arguments": arguments}
        )

    def _tool_result_text(self, event: Any) -> None:
        record = self.tool_calls.get(event.tool_call_id)
        if record is not None and len(record.output) < MAX_TOOL_OUTPUT_EVENT:
            record.output += event.delta or ""

    def _tool_result_data(self, event: Any) -> None:
        record = self.tool_calls.get(event.tool_call_id)
        if record is not None:
            record.output += f"[{getattr(event, 'media_type', 'data')}]"

    def _tool_result_end(self, event: Any) -> None:
        record = self.tool_calls.get(event.tool_call_id)
        if record is None:
            return
        state = str(getattr(event, "state", "") or "success")
        status = _TOOL_STATUS.get(state, "completed")
        record.status = status
        output = record.output[:MAX_TOOL_OUTPUT_EVENT]
        self._emit(
            agui.ToolCallResultEvent(
                message_id=f"{event.tool_call_id}:result",
                tool_call_id=event.tool_call_id,
                content=output,
                role="tool",
            )
        )
        step = self._tool_steps.pop(event.tool_call_id, None)
        if step is not None:
            step.output = {"result": output[:MAX_TOOL_OUTPUT_STORED], "state": state}
            self._finish_step(step, status, error=output[:500] if status == "failed" else "")
            record.duration_ms = step.duration_ms

    def _require_confirm(self, event: Any) -> None:
        for call in getattr(event, "tool_calls", []) or []:
            record = self.tool_calls.get(call.id)
            if record is not None:
                record.status = "awaiting_approval"
            self.pending_approvals.append(
                {"tool_call_id": call.id, "name": call.name, "input": _parse_args(call.input)}
            )

    def _reply_end(self, event: Any) -> None:
        self.last_reply_reason = str(getattr(event, "finished_reason", "") or "")
