"""Provider resilience: retries with backoff, Retry-After, a circuit breaker, a rate limit.

All of it wraps the one place a provider request is opened: ``_call_api`` of our AgentScope
model subclasses (:class:`ResilientChatMixin`), so it applies to the Agent's model calls
and to structured output alike.

Retries
    Only for transient failures (429, 408/409, 5xx, timeouts, connection errors) and only
    before the first token: the request is retried until it yields its first chunk, and a
    failure after that surfaces as a ProviderError (the runtime has already streamed
    text, so repeating the call would duplicate it). Delays grow exponentially
    (``LLM_RETRY_BASE_DELAY`` × 2^attempt, capped by ``LLM_RETRY_MAX_DELAY``) with full
    jitter in [50 %, 100 %]; a ``Retry-After``/``retry-after-ms`` header wins when present,
    and a Retry-After longer than ``LLM_MAX_RETRY_AFTER`` is not waited for — the error
    is raised with ``retry_after`` so the caller (a Celery retry) can come back later.
    ``LLM_MAX_RETRIES`` (default 2) retries at most.

Circuit breaker (one per provider endpoint, state in Django's cache — Redis in production,
so every web and worker process sees the same circuit)
    closed → open after ``LLM_BREAKER_THRESHOLD`` (5) consecutive failed attempts that
    point at the provider being down (5xx, timeouts, connection errors; not 4xx) → after
    ``LLM_BREAKER_COOLDOWN`` seconds (30) one probe call is let through (half-open; the
    probe slot is claimed with ``cache.add``, so only one process probes) → a success
    closes it, a failure re-opens it. While open, calls fail at once with
    ``ProviderError(code="circuit_open", transient=True)``.

Rate limit
    ``LLMModel.rate_limit_rpm``: a fixed one-minute window counted in the cache; over the
    limit a call fails with ``code="rate_limited"`` (transient, with ``retry_after``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import httpx
from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from integrations.llm.base import (
    ProviderConfig,
    ProviderError,
    parse_retry_after,
    scrub,
    status_error,
)
from integrations.outbound import OutboundBlocked

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _state_prefix(kind: str) -> str:
    # ``LLM_STATE_NAMESPACE`` isolates breaker/rate-limit state (tests set a fresh one).
    namespace = getattr(settings, "LLM_STATE_NAMESPACE", "")
    return f"llm-{kind}:v1:{namespace}:" if namespace else f"llm-{kind}:v1:"


# --- error translation ------------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _sdk_modules() -> list[Any]:
    # Only SDKs that are already imported can have raised; importing them here costs time.
    return [sys.modules[name] for name in ("openai", "anthropic") if name in sys.modules]


def _http_modules() -> list[Any]:
    return [httpx, *([sys.modules["httpx2"]] if "httpx2" in sys.modules else [])]


def body_message(body: Any) -> str:
    """The ``error.message`` of a provider's (parsed) error body, else the body as text."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or "")
        return str(error)
    return str(body or "")


def to_provider_error(exc: BaseException, *, secrets: Iterable[str] = ()) -> ProviderError | None:
    """The ProviderError for a failure of a provider call, or None if it is not one."""
    secrets = tuple(secrets)
    for link in _chain(exc):
        if isinstance(link, ProviderError):
            return link
        if isinstance(link, OutboundBlocked):
            return ProviderError(
                _("The provider URL is not allowed: %(reason)s") % {"reason": link.message},
                transient=False,
                code="blocked_url",
            )
    for sdk in _sdk_modules():
        if isinstance(exc, sdk.APIStatusError):
            response = getattr(exc, "response", None)
            return status_error(
                exc.status_code,
                retry_after=parse_retry_after(getattr(response, "headers", None)),
                detail=body_message(getattr(exc, "body", None)),
                secrets=secrets,
            )
        if isinstance(exc, sdk.APITimeoutError):
            return _timeout_error()
        if isinstance(exc, sdk.APIConnectionError):
            return _connection_error()
    for hx in _http_modules():
        if isinstance(exc, hx.HTTPStatusError):
            return status_error(
                exc.response.status_code,
                retry_after=parse_retry_after(exc.response.headers),
                secrets=secrets,
            )
        if isinstance(exc, hx.TimeoutException):
            return _timeout_error()
        if isinstance(exc, hx.TransportError):
            return _connection_error()
    if isinstance(exc, ValueError) and type(exc).__name__ in {"JSONDecodeError", "ValidationError"}:
        return ProviderError(
            _("The provider sent a malformed response."),
            transient=False,
            code="bad_response",
            detail=scrub(str(exc), secrets),
        )
    return None


def _timeout_error() -> ProviderError:
    return ProviderError(_("The provider did not answer in time."), transient=True, code="timeout")


def _connection_error() -> ProviderError:
    return ProviderError(
        _("Could not connect to the provider."), transient=True, code="connection_error"
    )


def _counts_against_breaker(error: ProviderError) -> bool:
    return error.code in {"timeout", "connection_error", "server_error"}


# --- circuit breaker ------------------------------------------------------------------------


class CircuitBreaker:
    """See the module docstring. ``key`` names the provider endpoint.

    The state lives in the shared cache; each process also remembers what it last read
    for ``LLM_BREAKER_MEMO`` seconds (1 s), so a healthy provider costs no cache round
    trip per call (two synchronous Redis reads on the event loop before, on every run's
    way to its first token). What this process records itself is seen at once; a circuit
    another process opened is seen within the memo time.
    """

    _memo: ClassVar[dict[str, tuple[float, Any, Any]]] = {}

    def __init__(self, key: str) -> None:
        self.key = key
        self.threshold = int(_setting("LLM_BREAKER_THRESHOLD", 5))
        self.cooldown = _setting("LLM_BREAKER_COOLDOWN", 30.0)
        self.memo_seconds = _setting("LLM_BREAKER_MEMO", 1.0)
        base = f"{_state_prefix('breaker')}{key}"
        self._failures = f"{base}:failures"
        self._opened = f"{base}:opened"
        self._probe = f"{base}:probe"

    def _read(self) -> tuple[Any, Any]:
        """``(opened, failures)``, from the memo while it is fresh."""
        memo = self._memo.get(self._opened)
        now = time.monotonic()
        if memo is not None and now - memo[0] < self.memo_seconds:
            return memo[1], memo[2]
        values = cache.get_many([self._opened, self._failures])
        opened, failures = values.get(self._opened), values.get(self._failures)
        self._memo[self._opened] = (now, opened, failures)
        return opened, failures

    def _forget(self) -> None:
        self._memo.pop(self._opened, None)

    def state(self) -> str:
        self._forget()
        opened, _failures = self._read()
        if opened is None:
            return "closed"
        return "open" if time.time() - opened < self.cooldown else "half_open"

    def before_call(self) -> None:
        opened, _failures = self._read()
        if opened is None:
            return
        remaining = self.cooldown - (time.time() - opened)
        if remaining <= 0 and cache.add(self._probe, 1, timeout=max(1, int(self.cooldown))):
            self._forget()
            return  # half-open: this call is the probe
        raise ProviderError(
            _("The provider is unavailable (too many recent failures); try again shortly."),
            transient=True,
            code="circuit_open",
            retry_after=max(remaining, 1.0),
        )

    def record_success(self) -> None:
        opened, failures = self._read()
        if opened is not None or failures:
            cache.delete_many([self._failures, self._opened, self._probe])
            self._memo[self._opened] = (time.monotonic(), None, None)

    def record_failure(self) -> None:
        self._forget()
        ttl = max(60, int(self.cooldown * 10))
        if cache.get(self._opened) is not None:
            # A failed half-open probe (or a straggler): open a fresh cool-down.
            cache.set(self._opened, time.time(), ttl)
            cache.delete(self._probe)
            return
        cache.add(self._failures, 0, ttl)
        try:
            failures = cache.incr(self._failures)
        except ValueError:  # expired between add and incr
            cache.set(self._failures, 1, ttl)
            failures = 1
        if failures >= self.threshold:
            cache.set(self._opened, time.time(), ttl)
            cache.delete(self._probe)
            logger.warning("llm circuit opened for %s after %d failures", self.key, failures)


# --- rate limit ---------------------------------------------------------------------------------


def check_rate_limit(model_id: str, rpm: int | None) -> None:
    if not rpm or not model_id:
        return
    now = time.time()
    window = int(now // 60)
    key = f"{_state_prefix('rpm')}{model_id}:{window}"
    cache.add(key, 0, 120)
    try:
        used = cache.incr(key)
    except ValueError:
        cache.set(key, 1, 120)
        used = 1
    if used > rpm:
        raise ProviderError(
            _("This model's rate limit (%(rpm)d requests per minute) is reached.") % {"rpm": rpm},
            transient=True,
            status=429,
            code="rate_limited",
            retry_after=max(1.0, (window + 1) * 60 - now),
        )


# --- retries --------------------------------------------------------------------------------


@dataclass
class Resilience:
    """The policy one chat model applies to each provider request."""

    breaker: CircuitBreaker
    secrets: tuple[str, ...] = ()
    model_id: str = ""
    rate_limit_rpm: int | None = None

    @classmethod
    def for_config(cls, config: ProviderConfig) -> Resilience:
        return cls(
            breaker=CircuitBreaker(config.breaker_key),
            secrets=config.secrets,
            model_id=config.model_id,
            rate_limit_rpm=config.rate_limit_rpm,
        )

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after * random.uniform(1.0, 1.1)  # noqa: S311 - jitter, not crypto
        base = _setting("LLM_RETRY_BASE_DELAY", 0.5)
        cap = _setting("LLM_RETRY_MAX_DELAY", 8.0)
        return min(cap, base * (2**attempt)) * random.uniform(0.5, 1.0)  # noqa: S311

    def translate(self, exc: BaseException) -> ProviderError | None:
        return to_provider_error(exc, secrets=self.secrets)

    async def call(self, open_request: Callable[[], Awaitable[T]]) -> T:
        """Run ``open_request`` (which must return once the first chunk is in) with retries."""
        max_retries = int(_setting("LLM_MAX_RETRIES", 2))
        max_retry_after = _setting("LLM_MAX_RETRY_AFTER", 30.0)
        check_rate_limit(self.model_id, self.rate_limit_rpm)
        attempt = 0
        while True:
            self.breaker.before_call()
            try:
                result = await open_request()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = self.translate(exc)
                if error is None:
                    raise
                if _counts_against_breaker(error):
                    self.breaker.record_failure()
                too_long = error.retry_after is not None and error.retry_after > max_retry_after
                if not error.transient or attempt >= max_retries or too_long:
                    raise error from None
                delay = self.backoff(attempt, error.retry_after)
                logger.info(
                    "llm call failed (%s), retry %d/%d in %.2fs",
                    error.code,
                    attempt + 1,
                    max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
                attempt += 1
                continue
            self.breaker.record_success()
            return result

    async def guard_stream(self, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Pass chunks through; a failure mid-stream becomes a ProviderError (no retry)."""
        try:
            async for chunk in stream:
                yield chunk
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = self.translate(exc)
            if error is None:
                raise
            if _counts_against_breaker(error):
                self.breaker.record_failure()
            raise error from None
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


async def _primed(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Pull the first chunk now (so failures before it can be retried), replay it later."""
    iterator = stream.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        return _replay(None, iterator, empty=True)
    return _replay(first, iterator, empty=False)


async def _replay(first: Any, rest: AsyncIterator[Any], *, empty: bool) -> AsyncIterator[Any]:
    try:
        if empty:
            return
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


class ResilientChatMixin:
    """Put in front of an AgentScope ``ChatModelBase`` subclass (see the module docstring).

    The adapter sets ``resilience`` and, optionally, ``call_defaults`` (request fields the
    AgentScope class has no parameter for, e.g. Anthropic's temperature).
    """

    resilience: Resilience
    call_defaults: dict[str, Any]

    @classmethod
    def _get_retryable_exceptions(cls) -> tuple[type[Exception], ...]:
        return ()  # our layer retries; AgentScope's own loop must not retry on top

    async def _call_api(
        self,
        model_name: str,
        messages: list[Any],
        tools: list[dict] | None = None,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> Any:
        parent = super()._call_api  # type: ignore[misc]
        merged = {**getattr(self, "call_defaults", {}), **kwargs}

        async def open_request() -> Any:
            result = await parent(model_name, messages, tools, tool_choice, **merged)
            if hasattr(result, "__aiter__"):
                return await _primed(result)
            return result

        result = await self.resilience.call(open_request)
        if hasattr(result, "__aiter__"):
            return self.resilience.guard_stream(result)
        return result


def resilient(model_class: type) -> type:
    """``model_class`` with :class:`ResilientChatMixin` in front (cache the result)."""
    return type(f"Resilient{model_class.__name__}", (ResilientChatMixin, model_class), {})


def client_kwargs(config: ProviderConfig) -> dict[str, Any]:
    """SDK client options: our guarded HTTP client, our timeouts, no SDK-level retries."""
    import httpx2

    from integrations.outbound import async_outbound_client

    timeout = httpx2.Timeout(**config.timeout.as_dict())
    return {
        # The SDKs are built on httpx2 (anthropic refuses httpx clients).
        "http_client": async_outbound_client(
            timeout=timeout, policy=config.policy, flavor="httpx2"
        ),
        "timeout": timeout,
        "max_retries": 0,
    }
