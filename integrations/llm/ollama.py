"""Ollama, through its OpenAI-compatible ``/v1`` API (no extra SDK needed).

AgentScope's ``OllamaChatModel`` needs the ``ollama`` package, which we do not ship; the
``/v1/chat/completions`` endpoint streams text and tool calls the same way.
"""

from __future__ import annotations

from typing import Any

import httpx

from integrations.llm.base import Provider, ProviderConfig, TestRequest, model_list_detail, register
from integrations.llm.openai import build_openai_compatible
from integrations.models import ProviderType


@register
class OllamaProvider(Provider):
    provider_type = ProviderType.OLLAMA
    needs_key = False

    def base_url(self, config: ProviderConfig) -> str:
        base = super().base_url(config)
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def build(self, config: ProviderConfig) -> Any:
        return build_openai_compatible(
            config, base_url=f"{self.base_url(config)}/v1", api_key=config.api_key or "ollama"
        )

    def test_request(self, config: ProviderConfig) -> TestRequest:
        return TestRequest("GET", f"{self.base_url(config)}/api/tags")

    def test_detail(self, config: ProviderConfig, response: httpx.Response) -> str:
        return model_list_detail(config, response, key="models")
