"""Anthropic (Claude) through AgentScope's ``AnthropicChatModel`` and the anthropic SDK."""

from __future__ import annotations

import functools
from typing import Any

from integrations.llm.base import Provider, ProviderConfig, TestRequest, register
from integrations.llm.openai import split_parameters
from integrations.llm.resilience import Resilience, client_kwargs, resilient
from integrations.models import ProviderType

ANTHROPIC_VERSION = "2023-06-01"


@functools.cache
def anthropic_chat_model_class() -> type:
    from agentscope.model import AnthropicChatModel

    return resilient(AnthropicChatModel)


@register
class AnthropicProvider(Provider):
    provider_type = ProviderType.ANTHROPIC
    default_base_url = "https://api.anthropic.com"

    def base_url(self, config: ProviderConfig) -> str:
        # The SDK appends /v1/messages itself; accept a base URL typed with /v1.
        base = super().base_url(config)
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def build(self, config: ProviderConfig) -> Any:
        from agentscope.credential import AnthropicCredential

        cls = anthropic_chat_model_class()
        parameters, extras = split_parameters(cls.Parameters, config)
        model = cls(
            credential=AnthropicCredential(api_key=config.api_key, base_url=self.base_url(config)),
            model=config.model_name,
            parameters=parameters,
            stream=config.stream,
            max_retries=0,
            context_size=config.context_size or 200000,
            client_kwargs=client_kwargs(config),
        )
        # No temperature: neither AgentScope's Anthropic parameters nor the anthropic 2.x SDK
        # take one. Other extra parameters travel in the request body.
        model.call_defaults = {"extra_body": extras} if extras else {}
        model.resilience = Resilience.for_config(config)
        return model

    def test_request(self, config: ProviderConfig) -> TestRequest:
        return TestRequest(
            "POST",
            f"{self.base_url(config)}/v1/messages",
            headers={
                "x-api-key": config.api_key,
                "anthropic-version": ANTHROPIC_VERSION,
                "content-type": "application/json",
            },
            json={
                "model": config.model_name,
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "ping"}],
            },
        )
