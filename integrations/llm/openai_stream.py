"""A lean client for streamed OpenAI-compatible chat completions.

AgentScope's ``OpenAIChatModel`` calls ``self.client.chat.completions.create(**kwargs)``
and iterates the result as ``async with response as stream: async for chunk in stream``.
:class:`LeanOpenAIClient` stands in for the SDK client there: a streamed request goes out
through one guarded aiohttp session (``integrations.outbound.aiohttp_session``) and each
``data:`` line is validated straight from its JSON bytes into the SDK's own
``ChatCompletionChunk`` type, so AgentScope sees exactly the objects it expects.

Why (``bench/run_overhead.py``, 2026-11-22): per streamed request the SDK spends ~4 ms of
CPU before the first byte leaves (typed-dict transformation of the messages, its httpx
request machinery), httpx ~2 ms; aiohttp ~1 ms. On two cores shared by ten runs
starting together that is the difference between a first token in tens of milliseconds
and in hundreds.

**Holding text back where it would wait anyway.** Every chunk a stream yields costs ~150
µs of CPU on its way through AgentScope's model and agent and the runtime's translator
and emitter — at 10 ms a token that is the biggest cost of a run, and what limits how
many streams a worker carries. The emitter then batches text deltas for tens of
milliseconds anyway (``chats.runtime.emitter``). A caller that knows how long a delta
yielded now would wait downstream sets :data:`stream_hold` (a callable returning
seconds); after yielding text, the stream keeps reading for about that long without
parsing (stopping early when the bytes show more than text coming: the end, a tool call,
usage), then parses everything that arrived and yields consecutive text-only chunks as
one. Text
reaches the client in the same flush as before, with a fraction of the work; the first
text of a stream, and anything that is not plain text (tool calls, usage, the end), is
never held.

Everything else — non-streamed calls, anything the lean path does not understand — is
delegated to the SDK client, which stays available as ``sdk``. Errors are raised as
:class:`~integrations.llm.base.ProviderError` with the same codes the SDK path produces
(``integrations.llm.resilience.to_provider_error``): HTTP statuses, timeouts, connection
errors, blocked addresses (``OutboundBlocked``), malformed chunks (``bad_response``).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.utils.translation import gettext as _

from integrations.llm.base import ProviderError, parse_retry_after, scrub, status_error

logger = logging.getLogger(__name__)

#: kwargs of ``create()`` that are request options, not body fields.
_OPTION_KEYS = {"extra_headers", "extra_query", "extra_body", "timeout"}
_MAX_ERROR_BODY = 64 * 1024

#: Seconds a text delta yielded now would wait downstream anyway (module docstring); set
#: by the runtime for the run's task. None: never hold.
stream_hold: contextvars.ContextVar[Callable[[], float] | None] = contextvars.ContextVar(
    "agentstore_stream_hold", default=None
)
#: Holds shorter than this are not worth a timer.
_MIN_HOLD = 0.003
#: In raw SSE bytes: something other than text is coming (the end, a tool call, usage,
#: reasoning), so holding stops at once.
_NOT_ONLY_TEXT = re.compile(
    rb'\[DONE\]|"finish_reason"\s*:\s*"|"tool_calls"|"usage"\s*:\s*\{|"reasoning|"error"'
)


def parse_chunk(data: bytes | str) -> Any:
    """A ``ChatCompletionChunk`` from one SSE ``data`` payload.

    Validated from the JSON bytes (~20 µs); a chunk that a lax server shaped differently
    falls back to the SDK's lenient construction; an ``{"error": …}`` object mid-stream
    becomes a ProviderError. Malformed JSON raises ``JSONDecodeError`` (``bad_response``).
    """
    import pydantic
    from openai.types.chat import ChatCompletionChunk

    try:
        return ChatCompletionChunk.model_validate_json(data)
    except pydantic.ValidationError:
        pass
    value = json.loads(data)
    if isinstance(value, dict) and value.get("error"):
        error = value["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise ProviderError(
            _("The provider reported an error while answering."),
            transient=False,
            code="provider_error",
            detail=scrub(str(message or "")),
        )
    from openai._models import construct_type

    return construct_type(type_=ChatCompletionChunk, value=value)


def _text_only(chunk: Any) -> str | None:
    """The text of a chunk that carries nothing but text (one choice, no tool calls, no
    finish reason, no usage, no reasoning), else None."""
    try:
        return _text_of(chunk)
    except AttributeError:  # a leniently constructed chunk missing a field
        return None


def _text_of(chunk: Any) -> str | None:
    if getattr(chunk, "usage", None) is not None:
        return None
    choices = chunk.choices
    if len(choices) != 1:
        return None
    choice = choices[0]
    if choice.index != 0 or choice.finish_reason is not None or choice.logprobs is not None:
        return None
    delta = choice.delta
    text = delta.content
    if not isinstance(text, str) or not text or delta.tool_calls or delta.function_call:
        return None
    if delta.model_extra and any(delta.model_extra.values()):
        return None  # reasoning, audio or another provider extension: pass it on as is
    return text


def merge_text(chunks: list[Any]) -> list[Any]:
    """Consecutive text-only chunks as one (the first one, its text extended)."""
    merged: list[Any] = []
    open_text: list[str] | None = None
    for chunk in chunks:
        text = _text_only(chunk)
        if text is not None and open_text is not None:
            open_text.append(text)
            continue
        if open_text is not None and len(open_text) > 1:
            merged[-1].choices[0].delta.content = "".join(open_text)
        open_text = [text] if text is not None else None
        merged.append(chunk)
    if open_text is not None and len(open_text) > 1:
        merged[-1].choices[0].delta.content = "".join(open_text)
    return merged


class _ChunkStream:
    """``async with stream: async for chunk in stream`` over an open aiohttp response."""

    def __init__(self, response: Any, secrets: tuple[str, ...]) -> None:
        self._response = response
        self._secrets = secrets
        self._hold = stream_hold.get()

    async def __aenter__(self) -> _ChunkStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._response.release()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[Any]:
        import aiohttp

        content = self._response.content
        pending = b""
        data: list[bytes] = []
        done = False
        held = b""  # what arrived while text was held back
        try:
            while not done:
                if held:
                    block, held = held, b""
                else:
                    block = await content.readany()  # everything buffered, or wait for more
                if not block:
                    break
                lines = (pending + block).split(b"\n")
                pending = lines.pop()
                parsed = []
                for raw in lines:
                    line = raw.rstrip(b"\r")
                    if line.startswith(b"data:"):
                        data.append(line[6:] if line[5:6] == b" " else line[5:])
                        continue
                    if line or not data:
                        continue  # a comment, another field, or a blank line between events
                    payload = b"\n".join(data)
                    data = []
                    if payload.startswith(b"[DONE]"):
                        done = True
                        break
                    try:
                        parsed.append(parse_chunk(payload))
                    except Exception:
                        for chunk in parsed:  # what came before the bad chunk still counts
                            yield chunk
                        raise
                held_text = False
                for chunk in merge_text(parsed) if self._hold is not None else parsed:
                    yield chunk
                    held_text = _text_only(chunk) is not None
                if held_text and not done:
                    held = await self._read_held(content)
            if not done:
                tail = [line.rstrip(b"\r") for line in pending.split(b"\n")]
                data += [
                    line[6:] if line[5:6] == b" " else line[5:]
                    for line in tail
                    if line.startswith(b"data:")
                ]
                if data and not data[0].startswith(b"[DONE]"):
                    yield parse_chunk(b"\n".join(data))
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ProviderError(
                _("The provider did not answer in time."), transient=True, code="timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(
                _("Could not connect to the provider."), transient=True, code="connection_error"
            ) from exc
        finally:
            self._response.release()

    async def _read_held(self, content: Any) -> bytes:
        """After text: keep reading, without parsing, while a delta would wait downstream
        anyway (module docstring); stop early when what arrives is more than text — the
        end of the answer, a tool call, usage — so nothing but text is ever held."""
        if self._hold is None:
            return b""
        try:
            hold = float(self._hold())
        except Exception:  # noqa: BLE001 - a hint, never a reason to fail the stream
            return b""
        if hold < _MIN_HOLD:
            return b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold - _MIN_HOLD / 3
        arrived: list[bytes] = []
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    block = await content.readany()
            except TimeoutError:
                break
            if not block:
                break  # the end: the main loop sees it on its next read
            arrived.append(block)
            if _NOT_ONLY_TEXT.search(block):
                break
        return b"".join(arrived)


class _Completions:
    def __init__(self, client: LeanOpenAIClient) -> None:
        self._client = client

    async def create(self, **kwargs: Any) -> Any:
        if not kwargs.get("stream") or kwargs.get("extra_query"):
            return await self._client.sdk.chat.completions.create(**kwargs)
        return await self._client.stream(kwargs)


class _Chat:
    def __init__(self, client: LeanOpenAIClient) -> None:
        self.completions = _Completions(client)


class LeanOpenAIClient:
    """Stands in for ``openai.AsyncClient`` inside AgentScope's OpenAI chat model."""

    def __init__(
        self,
        sdk: Any,
        *,
        base_url: str,
        api_key: str,
        policy: Any,
        timeout: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.sdk = sdk
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
            **(headers or {}),
        }
        self.policy = policy
        self.timeout = timeout
        self.secrets = (api_key,) if api_key else ()
        self.chat = _Chat(self)
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_for_loop(self) -> Any:
        from integrations.outbound import aiohttp_session

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp_session(policy=self.policy, timeout=self.timeout)
            self._loop = loop
        return self._session

    async def stream(self, kwargs: dict[str, Any]) -> _ChunkStream:
        import aiohttp

        from integrations.llm.resilience import body_message, to_provider_error
        from integrations.outbound import OutboundBlocked, vet_url

        body = {key: value for key, value in kwargs.items() if key not in _OPTION_KEYS}
        body.update(kwargs.get("extra_body") or {})
        headers = {**self.headers, **(kwargs.get("extra_headers") or {})}
        vet_url(self.url, self.policy)  # scheme and IP literals (names: the resolver)
        session = self._session_for_loop()
        try:
            response = await session.post(
                self.url,
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers=headers,
                allow_redirects=False,
            )
        except OutboundBlocked:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ProviderError(
                _("The provider did not answer in time."), transient=True, code="timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            # The resolver's refusal arrives wrapped; the resilience layer's own
            # translation finds it in the chain (``blocked_url``).
            known = to_provider_error(exc, secrets=self.secrets)
            if known is not None:
                raise known from None
            raise ProviderError(
                _("Could not connect to the provider."), transient=True, code="connection_error"
            ) from exc
        if response.status >= 300:
            try:
                raw = await response.content.read(_MAX_ERROR_BODY)
            except aiohttp.ClientError:
                raw = b""
            finally:
                response.release()
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            raise status_error(
                response.status,
                retry_after=parse_retry_after(response.headers),
                detail=body_message(body),
                secrets=self.secrets,
            )
        return _ChunkStream(response, self.secrets)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        await self.sdk.close()
