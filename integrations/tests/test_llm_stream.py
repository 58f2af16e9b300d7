"""The lean streaming client (integrations/llm/openai_stream.py) and chat models shared by a
long-lived loop's runs (integrations/llm/base.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from integrations.llm.base import ProviderError, aclose_chat_model, build_chat_model, text_of
from integrations.llm.openai_stream import LeanOpenAIClient, parse_chunk
from integrations.llm.resilience import to_provider_error
from integrations.tests.factories import LLMModelFactory, UserProviderKeyFactory
from tests.fakes.openai_server import Reply

pytestmark = pytest.mark.django_db

KEY = "sk-stream-test-key-0042"


def _model(fake_llm, **fields):
    return LLMModelFactory(
        provider_type="custom", base_url=fake_llm.base_url, api_key=KEY, **fields
    )


def _messages(text: str = "Hello?"):
    from agentscope.message import UserMsg

    return [UserMsg(name="user", content=text)]


async def _answer(chat_model) -> str:
    result = await chat_model(_messages())
    last = None
    async for chunk in result:
        last = chunk
    return text_of(last)


# --- chunks -------------------------------------------------------------------------------


def test_a_chunk_is_validated_from_its_json_bytes():
    chunk = parse_chunk(
        b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}'
    )

    assert (chunk.id, chunk.choices[0].delta.content) == ("c1", "Hi")


def test_a_lax_chunk_falls_back_to_the_sdks_lenient_construction():
    chunk = parse_chunk(json.dumps({"choices": [{"delta": {"content": "x"}, "index": 0}]}))

    assert chunk.choices[0].delta.content == "x"


def test_an_error_object_mid_stream_is_a_provider_error_without_the_key():
    with pytest.raises(ProviderError) as info:
        parse_chunk(json.dumps({"error": {"message": f"bad key {KEY}"}}))

    assert (info.value.code, info.value.transient) == ("provider_error", False)
    assert KEY not in info.value.detail
    assert KEY not in str(info.value)


def test_malformed_json_is_a_bad_response():
    with pytest.raises(json.JSONDecodeError) as info:
        parse_chunk(b'{"choices": [')

    assert to_provider_error(info.value).code == "bad_response"


# --- the client -----------------------------------------------------------------------------


def test_custom_models_stream_through_the_lean_client(fake_llm, user):
    fake_llm.queue(Reply(tokens=["Hel", "lo"]))
    chat_model = build_chat_model(_model(fake_llm), user=user)

    async def go() -> str:
        try:
            return await _answer(chat_model)
        finally:
            await aclose_chat_model(chat_model)

    assert isinstance(chat_model.client, LeanOpenAIClient)
    assert asyncio.run(go()) == "Hello"
    request = fake_llm.chat_requests[0]
    assert (request.bearer, request.body["stream"], request.body["stream_options"]) == (
        KEY,
        True,
        {"include_usage": True},
    )


def test_a_redirect_is_not_followed(fake_llm, user):
    fake_llm.queue(Reply(status=307))
    chat_model = build_chat_model(_model(fake_llm), user=user)

    async def go() -> None:
        try:
            await _answer(chat_model)
        finally:
            await aclose_chat_model(chat_model)

    with pytest.raises(ProviderError) as info:
        asyncio.run(go())

    assert (info.value.status, info.value.transient) == (307, False)
    assert len(fake_llm.chat_requests) == 1


# --- models shared by a loop's runs -----------------------------------------------------------


def test_a_loop_shares_one_model_per_configuration_and_keeps_it_open(fake_llm, user, other_user):
    fake_llm.queue(Reply(tokens=["one"]), Reply(tokens=["two"]))
    model = _model(fake_llm)
    UserProviderKeyFactory(user=other_user, provider_type="custom", api_key="sk-own-key-77")
    loop = asyncio.new_event_loop()
    try:
        first = build_chat_model(model, user=user, shared_on=loop)
        answers = [loop.run_until_complete(_answer(first))]
        loop.run_until_complete(aclose_chat_model(first))  # shared: stays open
        second = build_chat_model(model, user=user, shared_on=loop)
        answers.append(loop.run_until_complete(_answer(second)))
        others = build_chat_model(model, user=other_user, shared_on=loop)
        hotter = build_chat_model(model, user=user, temperature=1.5, shared_on=loop)
        session = first.client._session
        reused = session is second.client._session and not session.closed
        loop.run_until_complete(first.client.close())
    finally:
        loop.close()

    assert first is second
    assert reused
    assert others is not first  # another key
    assert hotter is not first  # other parameters
    assert answers == ["one", "two"]
    assert [r.bearer for r in fake_llm.chat_requests] == [KEY, KEY]


def test_an_inactive_model_is_refused_even_when_a_shared_one_exists(fake_llm, user):
    model = _model(fake_llm)
    loop = asyncio.new_event_loop()
    try:
        build_chat_model(model, user=user, shared_on=loop)
        model.is_active = False
        with pytest.raises(ProviderError) as info:
            build_chat_model(model, user=user, shared_on=loop)
    finally:
        loop.close()

    assert info.value.code == "model_inactive"


# --- holding text back while it would wait downstream -------------------------------------


def _chunk(delta: dict, **choice) -> bytes:
    return json.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None, **choice}],
        }
    ).encode()


def test_consecutive_text_chunks_merge_and_nothing_else_does():
    from integrations.llm.openai_stream import merge_text

    tool = {"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f", "arguments": ""}}]}
    chunks = [
        parse_chunk(_chunk({"content": "a"})),
        parse_chunk(_chunk({"content": "b"})),
        parse_chunk(_chunk(tool)),
        parse_chunk(_chunk({"content": "c"})),
        parse_chunk(_chunk({"content": "d"}, finish_reason="stop")),
        parse_chunk(_chunk({"content": "e", "reasoning_content": "hm"})),
        parse_chunk(_chunk({"content": "f"})),
    ]

    merged = merge_text(chunks)

    assert [c.choices[0].delta.content for c in merged] == ["ab", None, "c", "d", "e", "f"]
    assert merged[1].choices[0].delta.tool_calls[0].id == "t1"
    assert merged[3].choices[0].finish_reason == "stop"


def _stream_pieces(fake_llm, user, hold) -> tuple[list[str], float, float]:
    """The text of each chunk the lean client yields, its time to the first chunk and the
    whole stream's time, with ``stream_hold`` set to ``hold``."""
    from integrations.llm.openai_stream import stream_hold

    chat_model = build_chat_model(_model(fake_llm), user=user)

    async def go():
        import time

        stream_hold.set(hold)
        pieces: list[str] = []
        start = time.perf_counter()
        first = None
        try:
            response = await chat_model.client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async with response as stream:
                async for chunk in stream:
                    text = chunk.choices[0].delta.content if chunk.choices else None
                    if text:
                        first = first or time.perf_counter() - start
                        pieces.append(text)
        finally:
            await aclose_chat_model(chat_model)
        return pieces, first, time.perf_counter() - start

    return asyncio.run(go())


def test_text_is_held_while_it_would_wait_downstream_and_the_first_piece_is_not(fake_llm, user):
    fake_llm.queue(Reply(token_count=20, token_delay=0.005, first_token_delay=0.01))
    pieces, _first, _total = _stream_pieces(fake_llm, user, hold=lambda: 0.03)

    assert "".join(pieces) == "".join(f"t{i} " for i in range(20))
    assert pieces[0] == "t0 "  # the first text goes on at once
    assert len(pieces) <= 8  # 20 pieces 5 ms apart, held 30 ms at a time


def test_without_a_hold_every_piece_goes_on_as_it_came(fake_llm, user):
    fake_llm.queue(Reply(token_count=20, token_delay=0.005))
    pieces, _first, _total = _stream_pieces(fake_llm, user, hold=None)

    assert pieces == [f"t{i} " for i in range(20)]


def test_a_hold_that_fails_is_ignored(fake_llm, user):
    def broken() -> float:
        raise RuntimeError("no emitter")

    fake_llm.queue(Reply(token_count=5, token_delay=0.002))
    pieces, _first, _total = _stream_pieces(fake_llm, user, hold=broken)

    assert "".join(pieces) == "".join(f"t{i} " for i in range(5))


def test_the_end_of_the_answer_is_not_held(fake_llm, user):
    # Held text waits for at most the hold, and not at all once the end shows up.
    fake_llm.queue(Reply(token_count=10, token_delay=0.005))
    pieces, _first, total = _stream_pieces(fake_llm, user, hold=lambda: 2.0)

    assert "".join(pieces) == "".join(f"t{i} " for i in range(10))
    assert total < 1.0
