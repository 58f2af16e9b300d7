"""The offline demo model: deterministic streaming, tool calls, citations, honesty."""

from __future__ import annotations

import asyncio

import pytest

from integrations.demo import ensure_demo_model
from integrations.llm.base import build_chat_model, stream_chat, text_of
from integrations.llm.demo import (
    Passage,
    format_passages,
    parse_passages,
    split_deltas,
    tool_arguments,
)

PASSAGES = [
    {"title": "Refund policy", "text": "Refunds are processed within 14 days. Keep the receipt."},
    {"title": "Shipping", "text": "Orders ship in 3 days. Express shipping costs extra."},
    {"title": "Contact", "text": "Write to support@example.com for anything else."},
]


def _tool(name, properties=None, required=None):
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool.",
            "parameters": {
                "type": "object",
                "properties": properties or {},
                "required": required or [],
            },
        },
    }


CURRENT_TIME = _tool("current_time")
CALCULATOR = _tool("calculator", {"expression": {"type": "string"}}, ["expression"])
ADD = _tool("add", {"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"])
SEARCH = _tool(
    "search_knowledge", {"query": {"type": "string"}, "top_k": {"type": "integer"}}, ["query"]
)


@pytest.fixture
def demo_model():
    from integrations.llm.base import ProviderConfig, get_provider

    return get_provider("demo").build(ProviderConfig(provider_type="demo", model_name="demo"))


def _msgs(user_text, system="You are a helpful assistant."):
    from agentscope.message import SystemMsg, UserMsg

    return [SystemMsg(name="system", content=system), UserMsg(name="user", content=user_text)]


def _call(model, messages, tools=None, tool_choice=None):
    async def run():
        result = await model(messages, tools=tools, tool_choice=tool_choice)
        return [chunk async for chunk in result]

    return asyncio.run(run())


# --- streaming and honesty ----------------------------------------------------------------------


def test_streams_the_answer_in_small_deltas(demo_model):
    chunks = _call(demo_model, _msgs("Hello there, demo!"))

    deltas = [text_of(c) for c in chunks[:-1] if text_of(c)]
    final = chunks[-1]
    assert len(deltas) > 10
    assert max(len(d) for d in deltas) <= 20
    assert "".join(deltas) == text_of(final)
    assert final.is_last is True


def test_default_answer_is_honest_and_echoes_the_message(demo_model):
    chunks = _call(demo_model, _msgs("What is the capital of France?"))

    assert text_of(chunks[-1]) == (
        "I am the offline demo model: I do not really understand language, but I show how "
        "this product works without any API key. You said: “What is the capital of France?”. "
        "That is 6 words. Connect a real model in the admin to get real answers."
    )


def test_default_answer_mentions_the_tools_it_could_call(demo_model):
    chunks = _call(demo_model, _msgs("Hi"), tools=[CURRENT_TIME, CALCULATOR])

    assert text_of(chunks[-1]).endswith(
        "Name one of my tools in your message and I will call it: current_time, calculator."
    )


def test_chinese_messages_get_a_chinese_answer(demo_model):
    chunks = _call(demo_model, _msgs("你好，今天怎么样？"))

    assert text_of(chunks[-1]).startswith("我是离线演示模型")


def test_output_is_deterministic(demo_model):
    first = _call(demo_model, _msgs("Tell me a story"), tools=[ADD])
    second = _call(demo_model, _msgs("Tell me a story"), tools=[ADD])

    assert [text_of(c) for c in first] == [text_of(c) for c in second]


def test_reports_token_usage(demo_model):
    chunks = _call(demo_model, _msgs("Count my tokens please"))

    usage = chunks[-1].usage
    assert usage.input_tokens == 13  # (28 + 22 characters) / 4, rounded up
    assert usage.output_tokens == len(split_deltas(text_of(chunks[-1])))


def test_split_deltas_joins_back_exactly():
    text = "Hello, world!  Two spaces.\n新的一行 mixed 中文."

    assert "".join(split_deltas(text)) == text


# --- tool calls -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "tool", "arguments"),
    [
        ("use current_time", CURRENT_TIME, "{}"),
        ("calculate 2+3 with calculator", CALCULATOR, '{"expression": "2+3"}'),
        ("please use the calculator for (4 * 5) - 1", CALCULATOR, '{"expression": "(4 * 5) - 1"}'),
        ("add 2 and 3 with add", ADD, '{"a": 2, "b": 3}'),
        ("call add with a=10 b=-4", ADD, '{"a": 10, "b": -4}'),
        ("search knowledge for 'refund policy'", SEARCH, '{"query": "refund policy"}'),
        (
            "use search_knowledge: how long do refunds take",
            SEARCH,
            '{"query": "how long do refunds take"}',
        ),
    ],
)
def test_names_a_tool_and_it_is_called_with_parsed_arguments(demo_model, message, tool, arguments):
    chunks = _call(demo_model, _msgs(message), tools=[CURRENT_TIME, tool])

    calls = [b for b in chunks[-1].content if b.type == "tool_call"]
    assert [c.name for c in calls] == [tool["function"]["name"]]
    assert calls[0].input == arguments


def test_the_tool_call_is_streamed_in_pieces(demo_model):
    chunks = _call(demo_model, _msgs("add 2 and 3 with add"), tools=[ADD])

    pieces = [b.input for c in chunks[:-1] for b in c.content if b.type == "tool_call"]
    assert len(pieces) == 2
    assert "".join(pieces) == '{"a": 2, "b": 3}'


def test_free_text_fills_a_required_string_parameter():
    arguments = tool_arguments(SEARCH, "use search_knowledge: how long do refunds take")

    assert arguments == {"query": "how long do refunds take"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('fetch url with fetch "https://example.com/a"', {"url": "https://example.com/a"}),
        ("fetch https://example.com/b.", {"url": "https://example.com/b"}),
        ("fetch url=https://x.org format=json", {"url": "https://x.org", "format": "json"}),
    ],
)
def test_urls_and_enums_are_parsed(message, expected):
    tool = _tool(
        "fetch",
        {"url": {"type": "string"}, "format": {"type": "string", "enum": ["text", "json"]}},
        ["url", "format"],
    )

    arguments = tool_arguments(tool, message)

    assert {k: arguments[k] for k in expected} == expected
    assert arguments["format"] in {"text", "json"}


def test_no_tool_call_when_no_tool_is_named(demo_model):
    chunks = _call(demo_model, _msgs("What time is it?"), tools=[CALCULATOR])

    assert [b.type for b in chunks[-1].content] == ["text"]


def test_tool_choice_none_disables_tool_calls(demo_model):
    from agentscope.tool import ToolChoice

    chunks = _call(
        demo_model,
        _msgs("use current_time"),
        tools=[CURRENT_TIME],
        tool_choice=ToolChoice(mode="none"),
    )

    assert [b.type for b in chunks[-1].content] == ["text"]


def test_structured_output_works_through_the_forced_tool(demo_model):
    from pydantic import BaseModel

    class Verdict(BaseModel):
        score: int
        reason: str

    async def run():
        return await demo_model.generate_structured_output(
            _msgs("Score this answer: 7 out of 10"), Verdict
        )

    result = asyncio.run(run())

    assert result.content == {"score": 7, "reason": "Score this answer: 7 out of 10"}


# --- with the real AgentScope agent ------------------------------------------------------------


def _agent_reply(model, text, tools):
    from agentscope.agent import Agent, InjectionConfig, ModelConfig
    from agentscope.message import UserMsg
    from agentscope.permission import PermissionBehavior, PermissionDecision
    from agentscope.tool import FunctionTool, Toolkit

    allow = PermissionDecision(behavior=PermissionBehavior.ALLOW, message="test")

    async def run():
        agent = Agent(
            name="demo",
            system_prompt="You are the demo agent.",
            model=model,
            toolkit=Toolkit(tools=[FunctionTool(t, permission=allow) for t in tools]),
            model_config=ModelConfig(max_retries=0),
            injection_config=InjectionConfig(inject_runtime_state=False),
        )
        events = [
            e
            async for e in agent.reply_stream(
                UserMsg(name="user", content=text), yield_final_msg=True
            )
        ]
        return events

    return asyncio.run(run())


async def calculator(expression: str) -> str:
    """Evaluate a sum.

    Args:
        expression: Two numbers joined by +.
    """
    left, right = expression.split("+")
    return str(int(left) + int(right))


async def search_knowledge(query: str) -> str:
    """Search the knowledge base.

    Args:
        query: What to look for.
    """
    return format_passages(PASSAGES)


def test_agent_calls_the_named_tool_and_answers_with_its_result(demo_model):
    events = _agent_reply(demo_model, "calculate 2+3 with calculator", [calculator])

    types = [str(getattr(e, "type", "")) for e in events[:-1]]
    assert types.count("MODEL_CALL_START") == 2
    assert "TOOL_RESULT_END" in types
    assert events[-1].get_text_content() == "I called calculator and it returned: 5"


def test_agentic_retrieval_answer_quotes_passages_with_citations(demo_model):
    events = _agent_reply(
        demo_model, "search knowledge: how long do refunds take?", [search_knowledge]
    )

    assert events[-1].get_text_content() == (
        "Here is what the retrieved passages say:\n\n"
        "> Refunds are processed within 14 days. [1]\n\n"
        "(Demo model: I quote the retrieved passages instead of writing my own answer.)"
    )


@pytest.mark.django_db
def test_the_seeded_demo_model_builds_and_answers(user):
    model = ensure_demo_model()
    chat = build_chat_model(model, user=user)

    async def run():
        return [c async for c in stream_chat(chat, _msgs("Hi"))]

    chunks = asyncio.run(run())

    assert text_of(chunks[-1]).startswith("I am the offline demo model")


# --- retrieved passages in the context ----------------------------------------------------------


def test_passages_in_the_context_are_quoted_with_citations(demo_model):
    system = "Answer from the passages.\n" + format_passages(PASSAGES)

    chunks = _call(demo_model, _msgs("How much does express shipping cost?", system=system))

    assert text_of(chunks[-1]) == (
        "Here is what the retrieved passages say:\n\n"
        "> Express shipping costs extra. [2]\n\n"
        "(Demo model: I quote the retrieved passages instead of writing my own answer.)"
    )


def test_two_matching_passages_are_both_cited(demo_model):
    system = format_passages(PASSAGES)

    chunks = _call(demo_model, _msgs("refunds and shipping days?", system=system))

    text = text_of(chunks[-1])
    assert "[1]" in text
    assert "[2]" in text
    assert "[3]" not in text


def test_unmatched_question_quotes_the_top_passage_and_says_so(demo_model):
    chunks = _call(demo_model, _msgs("zebra?", system=format_passages(PASSAGES)))

    assert text_of(chunks[-1]).startswith(
        "None of the retrieved passages answers this clearly; the closest one says:\n\n"
        "> Refunds are processed within 14 days. [1]"
    )


def test_passages_in_the_user_message_are_used_and_not_echoed(demo_model):
    user_text = format_passages(PASSAGES[:1]) + "\nWhen are refunds processed?"

    chunks = _call(demo_model, _msgs(user_text))

    assert text_of(chunks[-1]).startswith("Here is what the retrieved passages say:")


def test_chinese_passages_are_matched_by_characters(demo_model):
    passages = [{"text": "退款会在十四天内处理。"}, {"text": "快递需要三天。"}]

    chunks = _call(demo_model, _msgs("快递要多久？", system=format_passages(passages)))

    assert text_of(chunks[-1]).splitlines()[2] == "> 快递需要三天。 [2]"


def test_format_and_parse_passages_round_trip():
    text = format_passages(PASSAGES[:2])

    assert text.splitlines()[1] == (
        "[1] (Refund policy) Refunds are processed within 14 days. Keep the receipt."
    )
    assert parse_passages("intro\n" + text + "\noutro") == [
        Passage(1, "Refunds are processed within 14 days. Keep the receipt.", "Refund policy"),
        Passage(2, "Orders ship in 3 days. Express shipping costs extra.", "Shipping"),
    ]
