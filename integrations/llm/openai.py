"""OpenAI (and the shared OpenAI-compatible builder used by custom, Ollama and Azure)."""

from __future__ import annotations

import functools
from typing import Any

import httpx
from django.utils.translation import gettext as _

from integrations.llm.base import (
    Provider,
    ProviderConfig,
    ProviderError,
    TestRequest,
    model_list_detail,
    register,
)
from integrations.llm.resilience import Resilience, client_kwargs, resilient
from integrations.models import ProviderType


@functools.cache
def openai_chat_model_class() -> type:
    from agentscope.model import OpenAIChatModel

    return resilient(OpenAIChatModel)


def split_parameters(
    parameters_class: type, config: ProviderConfig, *, extra_known: tuple[str, ...] = ()
) -> tuple[Any, dict[str, Any]]:
    """AgentScope ``Parameters`` for the fields it knows; the rest is returned as extras."""
    from pydantic import ValidationError

    fields = set(parameters_class.model_fields)
    values: dict[str, Any] = {}
    if config.max_tokens is not None and "max_tokens" in fields:
        values["max_tokens"] = config.max_tokens
    if config.temperature is not None and "temperature" in fields:
        values["temperature"] = config.temperature
    extras: dict[str, Any] = {}
    for key, value in config.params.items():
        if key in fields:
            values[key] = value
        elif key not in extra_known:
            extras[key] = value
    try:
        return parameters_class(**values), extras
    except ValidationError as exc:
        names = ", ".join(str(err["loc"][0]) for err in exc.errors() if err.get("loc"))
        raise ProviderError(
            _("Invalid model parameters: %(names)s.") % {"names": names},
            transient=False,
            code="invalid_params",
        ) from None


def build_openai_compatible(
    config: ProviderConfig,
    *,
    base_url: str,
    api_key: str | None = None,
    model_class: type | None = None,
    **init_kwargs: Any,
) -> Any:
    from agentscope.credential import OpenAICredential

    cls = model_class or openai_chat_model_class()
    parameters, extras = split_parameters(cls.Parameters, config)
    model = cls(
        credential=OpenAICredential(api_key=api_key or config.api_key, base_url=base_url),
        model=config.model_name,
        parameters=parameters,
        stream=config.stream,
        max_retries=0,
        context_size=config.context_size or 128000,
        client_kwargs=client_kwargs(config),
        extra_body=extras or None,
        **init_kwargs,
    )
    model.resilience = Resilience.for_config(config)
    model.client.__class__ = fast_chunk_client_class(type(model.client))
    if model_class is None:
        # Streamed requests skip the SDK (integrations.llm.openai_stream); Azure's
        # deployment URLs and headers stay with the SDK.
        from integrations.llm.openai_stream import LeanOpenAIClient

        model.client = LeanOpenAIClient(
            model.client,
            base_url=base_url,
            api_key=api_key or config.api_key,
            policy=config.policy,
            timeout=config.timeout,
        )
    return model


@functools.cache
def fast_chunk_client_class(base: type) -> type:
    """``base`` (an OpenAI SDK client class) parsing streamed chunks ~18x faster.

    The SDK builds each ``ChatCompletionChunk`` with its generic ``construct_type`` (about
    0.35 ms per chunk here), the largest CPU cost of a streamed run; pydantic's compiled
    validation takes ~0.02 ms. A chunk that does not validate (a lax OpenAI-compatible
    server) falls back to the SDK's lenient path. Only methods change, so swapping the
    class of an existing client instance is safe. (Added by the runtime issue; see
    bench/run_overhead.py.)
    """
    import pydantic
    from openai.types.chat import ChatCompletionChunk

    def _process_response_data(self, *, data, cast_to, response):
        if cast_to is ChatCompletionChunk and isinstance(data, dict):
            try:
                return ChatCompletionChunk.model_validate(data)
            except pydantic.ValidationError:
                pass
        return base._process_response_data(self, data=data, cast_to=cast_to, response=response)

    return type(
        f"FastChunk{base.__name__}", (base,), {"_process_response_data": _process_response_data}
    )


def bearer(config: ProviderConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}


@register
class OpenAIProvider(Provider):
    provider_type = ProviderType.OPENAI
    default_base_url = "https://api.openai.com/v1"

    def build(self, config: ProviderConfig) -> Any:
        return build_openai_compatible(config, base_url=self.base_url(config))

    def test_request(self, config: ProviderConfig) -> TestRequest:
        return TestRequest("GET", f"{self.base_url(config)}/models", headers=bearer(config))

    def test_detail(self, config: ProviderConfig, response: httpx.Response) -> str:
        return model_list_detail(config, response)
