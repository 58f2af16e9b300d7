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

Everything else — non-streamed calls, anything the lean path does not understand — is
delegated to the SDK client, which stays available as ``sdk``. Errors are raised as
:class:`~integrations.llm.base.ProviderError` with the same codes the SDK path produces
(``integrations.llm.resilience.to_provider_error``): HTTP statuses, timeouts, connection
errors, blocked addresses (``OutboundBlocked``), malformed chunks (``bad_response``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from django.utils.translation import gettext as _

from integrations.llm.base import ProviderError, parse_retry_after, scrub, status_error

logger = logging.getLogger(__name__)

#: kwargs of ``create()`` that are request options, not body fields.
_OPTION_KEYS = {"extra_headers", "extra_query", "extra_body", "timeout"}
_MAX_ERROR_BODY = 64 * 1024


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


class _ChunkStream:
    """``async with stream: async for chunk in stream`` over an open aiohttp response."""

    def __init__(self, response: Any, secrets: tuple[str, ...]) -> None:
        self._response = response
        self._secrets = secrets

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

        data: list[bytes] = []
        try:
            async for raw in self._response.content:
                line = raw.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data.append(line[6:] if line[5:6] == b" " else line[5:])
                    continue
                if line or not data:
                    continue  # a comment, another field, or a blank line between events
                payload = b"\n".join(data)
                data = []
                if payload.startswith(b"[DONE]"):
                    return
                yield parse_chunk(payload)
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
