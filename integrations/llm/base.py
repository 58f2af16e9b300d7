"""The one interface between the product and LLM providers (SPEC §6.1, STYLE §3).

For the runtime
    ``chat_model = build_chat_model(llm_model, user=run.user, temperature=…, max_tokens=…,
    params={…})`` returns an AgentScope 2.x chat model (a ``ChatModelBase``) to hand to
    ``agentscope.agent.Agent(model=chat_model, model_config=ModelConfig(max_retries=0), …)``:
    retries, backoff, Retry-After, the circuit breaker and the per-model rate limit live in
    our resilience layer (:mod:`integrations.llm.resilience`) inside the model, so the
    Agent must not retry on top. ``build_chat_model`` reads the database (key resolution),
    so call it from sync code or through ``abuild_chat_model`` on an event loop; the HTTP
    client inside belongs to the loop that first uses it, so build one per run and
    ``await aclose_chat_model(chat_model)`` at the end.

    The AgentScope contract (verified against 2.0.10): ``await chat_model(messages,
    tools=[{"type": "function", "function": {...}}], tool_choice=None)`` returns an async
    generator of ``ChatResponse`` when streaming — each non-last chunk carries only the
    new delta (``TextBlock`` text pieces, ``ToolCallBlock`` with partial ``input`` JSON
    text) and ``usage`` once known; the last chunk has ``is_last=True`` and the
    accumulated content with ``usage`` (``ChatUsage.input_tokens/output_tokens``). The
    Agent turns these into ``TEXT_BLOCK_*``/``TOOL_CALL_*``/``MODEL_CALL_END`` events.

Errors
    Every provider failure surfaces as :class:`ProviderError` with ``transient`` (worth
    retrying later: 429, 5xx, timeouts, connection errors, open circuit), the HTTP
    ``status`` if any and a stable ``code``. Messages are written by us, never copied
    from the provider (providers echo keys back), and are scrubbed of the key anyway.

Key resolution (SPEC §6.1, seed 000 §3.5.0)
    the user's own key for the provider type → the model's stored key → the provider's
    environment variable. The key is decrypted only here, when a client is built.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils.translation import gettext as _

from integrations.models import LLMModel, ProviderType, UserProviderKey
from integrations.outbound import OutboundPolicy, current_policy

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

ENV_VARS: dict[str, str] = {
    ProviderType.OPENAI: "OPENAI_API_KEY",
    ProviderType.ANTHROPIC: "ANTHROPIC_API_KEY",
    ProviderType.DASHSCOPE: "DASHSCOPE_API_KEY",
    ProviderType.AZURE_OPENAI: "AZURE_OPENAI_API_KEY",
}


# --- the error type --------------------------------------------------------------------------


class ProviderError(Exception):
    """A provider call failed. ``str(error)`` is safe to show, log and store."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        code: str = "provider_error",
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.detail = detail

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.message!r}, transient={self.transient}, "
            f"status={self.status}, code={self.code!r})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "transient": self.transient,
        }


_STATUS_REASONS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "the request was rejected"),
    401: ("auth_failed", "invalid API key"),
    403: ("forbidden", "access denied for this key"),
    404: ("not_found", "not found (check the base URL, model name or deployment)"),
    408: ("timeout", "the provider timed out"),
    409: ("conflict", "conflict, try again"),
    413: ("bad_request", "the request is too large"),
    422: ("bad_request", "the request was rejected"),
    429: ("rate_limited", "rate limited, slow down"),
}


def is_transient_status(status: int) -> bool:
    return status in {408, 409, 429} or status >= 500


def status_error(
    status: int,
    *,
    retry_after: float | None = None,
    detail: str = "",
    secrets: Iterable[str] = (),
) -> ProviderError:
    """The readable error for an HTTP error status: "HTTP 401 from provider: invalid API key"."""
    if status in _STATUS_REASONS:
        code, reason = _STATUS_REASONS[status]
    elif status >= 500:
        code, reason = "server_error", "the provider had an internal error"
    else:
        code, reason = "provider_error", "unexpected response"
    message = _("HTTP %(status)d from provider: %(reason)s") % {
        "status": status,
        "reason": _(reason),
    }
    return ProviderError(
        message,
        transient=is_transient_status(status),
        status=status,
        code=code,
        retry_after=retry_after,
        detail=scrub(detail, secrets),
    )


_KEYLIKE = re.compile(
    r"(?i)(bearer\s+\S+|sk-[A-Za-z0-9_\-*.]{4,}|(api[_-]?key|key|token)\s*[=:]\s*\S+)"
)


def scrub(text: str, secrets: Iterable[str] = (), *, limit: int = 300) -> str:
    """``text`` without the given secrets or anything shaped like a key, shortened."""
    if not text:
        return ""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _KEYLIKE.sub("***", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    from django.utils import timezone

    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


# --- configuration handed to the adapters ---------------------------------------------------


@dataclass(frozen=True)
class ProviderConfig:
    """Everything an adapter needs to build a client or run a connection test."""

    provider_type: str
    model_name: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    extra_config: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = True
    model_id: str = ""
    rate_limit_rpm: int | None = None
    key_source: str = ""
    policy: OutboundPolicy = field(default_factory=OutboundPolicy)

    @property
    def timeout(self) -> httpx.Timeout:
        connect = float(getattr(settings, "LLM_CONNECT_TIMEOUT", 10.0))
        read = float(getattr(settings, "LLM_READ_TIMEOUT", 60.0))
        return httpx.Timeout(connect=connect, read=read, write=30.0, pool=connect)

    @property
    def breaker_key(self) -> str:
        """One circuit per provider endpoint: same type and base URL share a breaker."""
        return f"{self.provider_type}|{self.base_url.rstrip('/').lower()}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()

    @property
    def context_size(self) -> int | None:
        try:
            return int(self.extra_config.get("context_size") or 0) or None
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class TestRequest:
    """The one HTTP request a provider's connection test makes (seed 000 §3.9.4)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    json: Any = None


class Provider:
    """One provider type: how to build its AgentScope chat model and test a connection.

    Subclasses live one per module (``integrations/llm/<type>.py``) and register with
    :func:`register`. They must not import AgentScope at module level (importing it
    costs ~1.7 s): do it inside :meth:`build`.
    """

    provider_type: ClassVar[str]
    needs_key: ClassVar[bool] = True
    default_base_url: ClassVar[str] = ""

    def base_url(self, config: ProviderConfig) -> str:
        return (config.base_url or self.default_base_url).rstrip("/")

    def build(self, config: ProviderConfig) -> Any:
        raise NotImplementedError

    def test_request(self, config: ProviderConfig) -> TestRequest | None:
        """The request to send, or None when the provider needs no network (demo)."""
        raise NotImplementedError

    def test_detail(self, config: ProviderConfig, response: httpx.Response) -> str:
        return _("The provider answered.")


_REGISTRY: dict[str, Provider] = {}


def register(cls: type[Provider]) -> type[Provider]:
    _REGISTRY[cls.provider_type] = cls()
    return cls


def get_provider(provider_type: str) -> Provider:
    import integrations.llm  # noqa: F401 - registers every provider module

    try:
        return _REGISTRY[provider_type]
    except KeyError:
        raise ProviderError(
            _("Unknown provider type %(type)r.") % {"type": provider_type},
            transient=False,
            code="unknown_provider",
        ) from None


def model_list_detail(config: ProviderConfig, response: httpx.Response, key: str = "data") -> str:
    """Shared by the providers whose test lists models: how many, and is ours among them."""
    try:
        items = response.json().get(key) or []
    except (ValueError, AttributeError):
        return _("The provider answered.")
    names = {str(item.get("id") or item.get("name") or item.get("model") or "") for item in items}
    names |= {name.split(":", 1)[0] for name in names}
    if config.model_name and config.model_name in names:
        return _("%(n)d models available, including %(model)s.") % {
            "n": len(items),
            "model": config.model_name,
        }
    return _("%(n)d models available; %(model)s is not among them.") % {
        "n": len(items),
        "model": config.model_name or "-",
    }


# --- key resolution -----------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = field(repr=False)
    base_url: str
    source: str  # "user", "model", "env" or "" (none)


# ``own_key`` of the functions below when the caller has not loaded the user's key.
KEY_NOT_LOADED: Any = object()


def resolve_credentials(
    model: LLMModel, *, user: User | None, own_key: Any = KEY_NOT_LOADED
) -> Credentials:
    """The key (and endpoint) a call for ``user`` uses: user's key → model's key → env var.

    A user's own key may come with their own endpoint (e.g. their Azure resource); it then
    replaces the model's base URL, because the key is only valid there. ``own_key``: the
    user's ``UserProviderKey`` for the model's provider type (or None: they have none)
    when the caller already loaded it (the runtime's claim does).
    """
    if user is not None and getattr(user, "is_authenticated", False):
        own = own_key
        if own is KEY_NOT_LOADED:
            own = UserProviderKey.objects.filter(
                user=user, provider_type=model.provider_type
            ).first()
        if own is not None and own.api_key:
            return Credentials(
                api_key=own.api_key, base_url=own.base_url or model.base_url, source="user"
            )
    if model.api_key:
        return Credentials(api_key=model.api_key, base_url=model.base_url, source="model")
    env_var = ENV_VARS.get(model.provider_type)
    if env_var and os.environ.get(env_var):
        return Credentials(api_key=os.environ[env_var], base_url=model.base_url, source="env")
    return Credentials(api_key=None, base_url=model.base_url, source="")


def resolve_api_key(model: LLMModel, *, user: User | None) -> str | None:
    return resolve_credentials(model, user=user).api_key


def provider_config_for(
    model: LLMModel,
    *,
    user: User | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    params: dict[str, Any] | None = None,
    stream: bool = True,
    require_key: bool = True,
    own_key: Any = KEY_NOT_LOADED,
) -> ProviderConfig:
    """Resolve the key and merge the overrides over the model's defaults."""
    provider = get_provider(model.provider_type)
    creds = resolve_credentials(model, user=user, own_key=own_key)
    if require_key and provider.needs_key and not creds.api_key:
        raise ProviderError(
            _("No API key is configured for %(model)s.") % {"model": model.display_name},
            transient=False,
            code="missing_key",
        )
    return ProviderConfig(
        provider_type=model.provider_type,
        model_name=model.model_name,
        base_url=creds.base_url or "",
        api_key=creds.api_key or "",
        extra_config=dict(model.extra_config or {}),
        temperature=model.default_temperature if temperature is None else temperature,
        max_tokens=max_tokens if max_tokens is not None else model.max_tokens,
        params=dict(params or {}),
        stream=stream and model.supports_streaming,
        model_id=str(model.pk or ""),
        rate_limit_rpm=model.rate_limit_rpm,
        key_source=creds.source,
        policy=current_policy(),
    )


# --- the runtime interface ----------------------------------------------------------------


def build_chat_model(
    model: LLMModel,
    *,
    user: User | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    params: dict[str, Any] | None = None,
    stream: bool = True,
    shared_on: Any = None,
    own_key: Any = KEY_NOT_LOADED,
) -> Any:
    """An AgentScope chat model for ``model`` (see the module docstring).

    ``shared_on``: a long-lived event loop; the model is then taken from (or added to) the
    models shared by that loop's runs, and :func:`aclose_chat_model` leaves it open.

    Raises ProviderError: ``model_inactive``, ``missing_key``, ``unknown_provider``.
    """
    if not model.is_active:
        raise ProviderError(
            _("The model %(model)s is not active.") % {"model": model.display_name},
            transient=False,
            code="model_inactive",
        )
    config = provider_config_for(
        model,
        user=user,
        temperature=temperature,
        max_tokens=max_tokens,
        params=params,
        stream=stream,
        own_key=own_key,
    )
    if shared_on is not None:
        return _shared_model(shared_on, config)
    return get_provider(model.provider_type).build(config)


# Chat models shared by the runs of one long-lived event loop (the Celery worker loop, the
# ASGI server's loop). Building one costs ~3 ms of CPU (an SDK client, parameter
# validation) and a fresh client opens a fresh connection; a shared model keeps its
# connections alive across runs. The key is the whole resolved configuration — model,
# endpoint, key, parameters, allowlist — so an admin's change or a user's own key is a
# different entry, never a stale one. Models are stateless between calls (AgentScope 2.0.x).
SHARED_MODELS_PER_LOOP = 64
_shared_models: weakref.WeakKeyDictionary[Any, OrderedDict[tuple, Any]] = (
    weakref.WeakKeyDictionary()
)
_shared_lock = threading.Lock()


def _config_key(config: ProviderConfig) -> tuple:
    def frozen(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    return (
        config.provider_type,
        config.model_name,
        config.base_url,
        config.api_key,
        frozen(config.extra_config),
        config.temperature,
        config.max_tokens,
        frozen(config.params),
        config.stream,
        config.model_id,
        config.rate_limit_rpm,
        config.policy,
    )


def _shared_model(loop: Any, config: ProviderConfig) -> Any:
    key = _config_key(config)
    with _shared_lock:
        models = _shared_models.setdefault(loop, OrderedDict())
        model = models.get(key)
        if model is not None:
            models.move_to_end(key)
            return model
    model = get_provider(config.provider_type).build(config)
    model.agentstore_shared = True
    evicted = []
    with _shared_lock:
        models = _shared_models.setdefault(loop, OrderedDict())
        if key in models:  # built twice at once: keep the first
            evicted.append(model)
            model = models[key]
        else:
            models[key] = model
        while len(models) > SHARED_MODELS_PER_LOOP:
            evicted.append(models.popitem(last=False)[1])
    for old in evicted:
        _close_later(loop, old)
    return model


def _close_later(loop: Any, model: Any) -> None:
    async def close() -> None:
        try:
            await _close_client(model)
        except Exception:  # noqa: BLE001 - closing an idle client must not fail a run
            logger.debug("closing an evicted chat model failed", exc_info=True)

    if not loop.is_closed():
        loop.call_soon_threadsafe(lambda: loop.create_task(close()))


abuild_chat_model: Callable[..., Any] = sync_to_async(build_chat_model, thread_sensitive=True)


async def aclose_chat_model(chat_model: Any) -> None:
    """Close the model's HTTP client (clients are bound to the loop that used them);
    models shared by a loop's runs stay open."""
    if getattr(chat_model, "agentstore_shared", False):
        return
    await _close_client(chat_model)


async def _close_client(chat_model: Any) -> None:
    client = getattr(chat_model, "client", None)
    close = getattr(client, "close", None)
    if close is not None:
        await close()


async def stream_chat(
    chat_model: Any, messages: list[Any], *, tools: list[dict] | None = None
) -> AsyncIterator[Any]:
    """Call an AgentScope chat model and yield its ``ChatResponse`` chunks, last one last.

    A plain streaming entry point for tests and benchmarks; the runtime uses the Agent.
    """
    result = await chat_model(messages, tools=tools)
    if hasattr(result, "__aiter__"):
        async for chunk in result:
            yield chunk
    else:
        yield result


def text_of(chunk: Any) -> str:
    """The text in one ChatResponse chunk (a delta, or the whole answer for the last one)."""
    return "".join(
        getattr(block, "text", "")
        for block in chunk.content
        if getattr(block, "type", "") == "text"
    )
