"""Units of the translator and the emitter: the wire format and delta batching."""

from __future__ import annotations

import pytest
from ag_ui import core as agui

from chats.runtime.emitter import coalesce
from chats.runtime.translate import Translator, wire


@pytest.mark.parametrize(
    ("kind", "key", "event"),
    [
        (
            "TEXT_MESSAGE_CONTENT",
            "messageId",
            agui.TextMessageContentEvent(message_id="m1", delta="Hi ", timestamp=5),
        ),
        (
            "REASONING_MESSAGE_CONTENT",
            "messageId",
            agui.ReasoningMessageContentEvent(message_id="m1", delta="Hi ", timestamp=5),
        ),
        (
            "TOOL_CALL_ARGS",
            "toolCallId",
            agui.ToolCallArgsEvent(tool_call_id="m1", delta="Hi ", timestamp=5),
        ),
    ],
)
def test_fast_deltas_match_ag_ui(kind, key, event, monkeypatch):
    emitted: list[dict] = []
    translator = Translator(emitted.append, run_id="r", message_id="m1")
    monkeypatch.setattr("chats.runtime.translate.now_ms", lambda: 5)

    translator._emit_delta(kind, key, "m1", "Hi ")

    assert emitted == [wire(event)]
    assert agui.EventType(emitted[0]["type"]) == event.type


def test_coalesce_merges_consecutive_deltas_of_the_same_stream_only():
    batch = [
        {"type": "TEXT_MESSAGE_START", "messageId": "a"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": "one ", "timestamp": 1},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": "two ", "timestamp": 2},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c", "delta": '{"x"', "timestamp": 3},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "d", "delta": "{", "timestamp": 4},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "d", "delta": "}", "timestamp": 5},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": "three", "timestamp": 6},
    ]

    assert coalesce(batch) == [
        {"type": "TEXT_MESSAGE_START", "messageId": "a"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": "one two ", "timestamp": 1},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c", "delta": '{"x"', "timestamp": 3},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "d", "delta": "{}", "timestamp": 4},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": "three", "timestamp": 6},
    ]
