"""The agent types differ in the model calls they make, the steps they record and which
text is the answer (SPEC §4.1)."""

from __future__ import annotations

import pytest

from chats.models import Run
from chats.runtime import strategies, tools
from chats.runtime.execute import Outcome, run_execute
from chats.tests.runtime_helpers import (
    agent_version,
    chat_run,
    demo_model,
    fake_model,
    steps,
    stored,
    text_of,
    types,
)
from tests.fakes.openai_server import Reply, ToolCall

pytestmark = pytest.mark.django_db

KB = "5b0c2f64-8a53-4c51-9a0e-7d7f1d0f0a11"


def tool_names(request) -> list[str]:
    return [tool["function"]["name"] for tool in request.body.get("tools") or []]


def last_user_text(request) -> str:
    return request.body["messages"][-1]["content"][0]["text"]


def reasoning_text(run: Run) -> str:
    return "".join(p["delta"] for p in stored(run) if p["type"] == "REASONING_MESSAGE_CONTENT")


def test_dialog_is_one_model_call_without_tools(user, fake_llm):
    fake_llm.queue(Reply(text="Hello!"))
    version = agent_version(
        fake_model(fake_llm), agent_type="dialog", builtin_tools=["current_time"]
    )
    run = chat_run(user, version, "Use current_time please")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    assert steps(run) == [("model_call", "fake-model", "completed")]
    assert len(fake_llm.chat_requests) == 1
    assert tool_names(fake_llm.chat_requests[0]) == []
    assert text_of(run) == "Hello!"


def test_react_loops_through_tool_calls(user, fake_llm):
    fake_llm.queue(
        Reply(tool_calls=[ToolCall(name="current_time", arguments={})]),
        Reply(tool_calls=[ToolCall(name="current_time", arguments={"timezone": "Europe/Paris"})]),
        Reply(text="Both times fetched."),
    )
    version = agent_version(fake_model(fake_llm), builtin_tools=["current_time"])
    run = chat_run(user, version, "time here and in Paris?")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    assert [kind for kind, _, _ in steps(run)] == [
        "model_call",
        "tool_call",
        "model_call",
        "tool_call",
        "model_call",
    ]
    assert tool_names(fake_llm.chat_requests[0]) == ["current_time"]
    assert text_of(run) == "Both times fetched."


def test_agentic_rag_offers_knowledge_search_and_records_retrieval(user, fake_llm, monkeypatch):
    searches = []

    def retrieve(**kwargs):
        searches.append(kwargs)
        return [{"text": "Refunds take 14 days.", "source": "Handbook"}]

    monkeypatch.setattr(tools, "_search_backend", lambda: retrieve)
    fake_llm.queue(
        Reply(tool_calls=[ToolCall(name="knowledge_search", arguments={"query": "refunds"})]),
        Reply(text="Refunds take 14 days [1]."),
    )
    version = agent_version(
        fake_model(fake_llm), agent_type="agentic_rag", knowledge={"knowledge_base_ids": [KB]}
    )
    run = chat_run(user, version, "How long do refunds take?")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    assert tool_names(fake_llm.chat_requests[0]) == ["knowledge_search"]
    system = fake_llm.chat_requests[0].body["messages"][0]["content"][0]["text"]
    assert strategies.KNOWLEDGE_HINT in system
    assert [kind for kind, _, _ in steps(run)] == ["model_call", "retrieval", "model_call"]
    assert searches == [
        {
            "knowledge_base_ids": [KB],
            "query": "refunds",
            "top_k": 5,
            "score_threshold": None,
            "user_id": str(user.pk),
        }
    ]
    result = next(p for p in stored(run) if p["type"] == "TOOL_CALL_RESULT")
    assert result["content"] == "[1] Refunds take 14 days. (source: Handbook)"


def test_agentic_rag_without_knowledge_bases_behaves_like_react(user, fake_llm):
    fake_llm.queue(Reply(text="No knowledge needed."))
    version = agent_version(
        fake_model(fake_llm), agent_type="agentic_rag", builtin_tools=["current_time"]
    )
    run = chat_run(user, version, "Hi")

    run_execute(str(run.pk))

    assert tool_names(fake_llm.chat_requests[0]) == ["current_time"]
    assert steps(run) == [("model_call", "fake-model", "completed")]


def test_plan_execute_plans_then_works_each_step_then_answers(user, fake_llm):
    fake_llm.queue(
        Reply(text="1. Look up the time\n2. Phrase the answer"),
        Reply(tool_calls=[ToolCall(name="current_time", arguments={})]),
        Reply(text="It is noon."),
        Reply(text="Say it is noon."),
        Reply(text="It is noon right now."),
    )
    version = agent_version(
        fake_model(fake_llm), agent_type="plan_execute", builtin_tools=["current_time"]
    )
    run = chat_run(user, version, "What time is it?")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    assert [kind for kind, _, _ in steps(run)] == [
        "plan",
        "model_call",
        "tool_call",
        "model_call",
        "model_call",
        "model_call",
    ]
    requests = fake_llm.chat_requests
    assert tool_names(requests[0]) == []  # planning has no tools
    assert tool_names(requests[1]) == ["current_time"]  # steps use them
    assert last_user_text(requests[1]).endswith("Now do step 1: Look up the time")
    assert last_user_text(requests[3]).endswith("Now do step 2: Phrase the answer")
    assert last_user_text(requests[4]) == (
        "What time is it?\n\n"
        f"{strategies.FINAL_INSTRUCTIONS}\n\n"
        "Notes:\n1. Look up the time: It is noon.\n2. Phrase the answer: Say it is noon."
    )
    assert reasoning_text(run) == (
        "1. Look up the time\n2. Phrase the answerIt is noon.Say it is noon."
    )
    kinds = types(run)
    assert kinds.index("REASONING_START") < kinds.index("TEXT_MESSAGE_START")
    assert text_of(run) == "It is noon right now."
    run.refresh_from_db()
    assert run.output == "It is noon right now."


def test_reflexion_answers_critiques_and_revises(user, fake_llm):
    fake_llm.queue(
        Reply(text="Paris."),
        Reply(text="Too short: add that it is the capital."),
        Reply(text="Paris is the capital of France."),
    )
    version = agent_version(fake_model(fake_llm), agent_type="reflexion")
    run = chat_run(user, version, "Capital of France?")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    assert [kind for kind, _, _ in steps(run)] == ["model_call", "critique", "model_call"]
    draft, critique, revise = fake_llm.chat_requests
    assert critique.body["messages"][0]["content"][0]["text"] == strategies.CRITIC_PROMPT
    assert last_user_text(critique) == "Request: Capital of France?\n\nDraft answer:\nParis."
    assert last_user_text(revise) == (
        "Capital of France?\n\n"
        f"{strategies.REVISE_INSTRUCTIONS}\n\n"
        "Draft answer:\nParis.\n\n"
        "Review:\nToo short: add that it is the capital."
    )
    assert reasoning_text(run) == "Paris.Too short: add that it is the capital."
    assert text_of(run) == "Paris is the capital of France."


@pytest.mark.parametrize("agent_type", list(strategies.STRATEGIES))
def test_every_agent_type_answers_on_the_offline_demo_model(user, agent_type):
    version = agent_version(demo_model(), agent_type=agent_type, builtin_tools=["current_time"])
    run = chat_run(user, version, "Please use current_time and tell me the time")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    run.refresh_from_db()
    assert run.output == text_of(run)
    assert run.output != ""
    assert types(run)[-1] == "RUN_FINISHED"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. A\n2. B\n3) C", ["A", "B", "C"]),
        ("- first\n* second", ["first", "second"]),
        ("Just do it.", ["Just do it."]),
        ("\n".join(f"{i}. step {i}" for i in range(1, 9)), [f"step {i}" for i in range(1, 6)]),
        ("", []),
    ],
)
def test_parse_plan(text, expected):
    assert strategies.parse_plan(text) == expected
