"""Any OpenAI-compatible endpoint (vLLM, LM Studio, a gateway, …): base URL required."""

from __future__ import annotations

from typing import Any

import httpx

from integrations.llm.base import Provider, ProviderConfig, TestRequest, model_list_detail, register
from integrations.llm.openai import bearer, build_openai_compatible
from integrations.models import ProviderType

#: Sent when a custom endpoint needs no key: the OpenAI SDK insists on one.
NO_KEY = "EMPTY"


@register
class CustomProvider(Provider):
    provider_type = ProviderType.CUSTOM
    needs_key = False  # self-hosted OpenAI-compatible servers often take none

    def build(self, config: ProviderConfig) -> Any:
        return build_openai_compatible(
            config, base_url=self.base_url(config), api_key=config.api_key or NO_KEY
        )

    def test_request(self, config: ProviderConfig) -> TestRequest:
        return TestRequest("GET", f"{self.base_url(config)}/models", headers=bearer(config))

    def test_detail(self, config: ProviderConfig, response: httpx.Response) -> str:
        return model_list_detail(config, response)
