"""DashScope (Qwen): chat through the OpenAI-compatible mode, test through the native API.

The base URL is the compatible-mode one (default
``https://dashscope.aliyuncs.com/compatible-mode/v1``); the connection test posts to the
native generation endpoint (seed 000 §3.9.4) derived from it, ``…/api/v1/services/aigc/
text-generation/generation``, or ``extra_config.native_base_url`` when set.
"""

from __future__ import annotations

import functools
from typing import Any

from integrations.llm.base import Provider, ProviderConfig, TestRequest, register
from integrations.llm.openai import bearer, split_parameters
from integrations.llm.resilience import Resilience, client_kwargs, resilient
from integrations.models import ProviderType

COMPATIBLE_SUFFIX = "/compatible-mode/v1"
GENERATION_PATH = "/services/aigc/text-generation/generation"


@functools.cache
def dashscope_chat_model_class() -> type:
    from agentscope.model import DashScopeChatModel

    return resilient(DashScopeChatModel)


def native_base_url(config: ProviderConfig, compatible_base: str) -> str:
    explicit = str(config.extra_config.get("native_base_url") or "").rstrip("/")
    if explicit:
        return explicit
    if compatible_base.endswith(COMPATIBLE_SUFFIX):
        return compatible_base[: -len(COMPATIBLE_SUFFIX)] + "/api/v1"
    return compatible_base


@register
class DashScopeProvider(Provider):
    provider_type = ProviderType.DASHSCOPE
    default_base_url = "https://dashscope.aliyuncs.com" + COMPATIBLE_SUFFIX

    def build(self, config: ProviderConfig) -> Any:
        from agentscope.credential import DashScopeCredential

        cls = dashscope_chat_model_class()
        parameters, extras = split_parameters(cls.Parameters, config)
        model = cls(
            credential=DashScopeCredential(api_key=config.api_key, base_url=self.base_url(config)),
            model=config.model_name,
            parameters=parameters,
            stream=config.stream,
            max_retries=0,
            context_size=config.context_size or 131072,
            client_kwargs=client_kwargs(config),
        )
        model.call_defaults = {"extra_body": extras} if extras else {}
        model.resilience = Resilience.for_config(config)
        return model

    def test_request(self, config: ProviderConfig) -> TestRequest:
        native = native_base_url(config, self.base_url(config))
        return TestRequest(
            "POST",
            f"{native}{GENERATION_PATH}",
            headers={**bearer(config), "content-type": "application/json"},
            json={
                "model": config.model_name,
                "input": {"messages": [{"role": "user", "content": "ping"}]},
                "parameters": {"max_tokens": 1},
            },
        )
