"""Azure OpenAI: the OpenAI SDK's Azure client inside AgentScope's OpenAI chat model.

AgentScope has no Azure class. The Azure client differs only in URL shape
(``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…``) and the
``api-key`` header, so the chat model is AgentScope's with its client swapped.
``extra_config``: ``api_version`` (required), ``deployment`` (default: the model name).
"""

from __future__ import annotations

import functools
from typing import Any

import httpx

from integrations.llm.base import Provider, ProviderConfig, TestRequest, model_list_detail, register
from integrations.llm.openai import build_openai_compatible, openai_chat_model_class
from integrations.models import ProviderType


@functools.cache
def azure_chat_model_class() -> type:
    base = openai_chat_model_class()

    class ResilientAzureOpenAIChatModel(base):  # type: ignore[misc, valid-type]
        def __init__(self, *, azure_endpoint: str, api_version: str, deployment: str, **kwargs):
            super().__init__(**kwargs)
            import openai

            self.client = openai.AsyncAzureOpenAI(
                api_key=self.credential.api_key.get_secret_value(),
                azure_endpoint=azure_endpoint,
                api_version=api_version,
                azure_deployment=deployment,
                **self.client_kwargs,
            )

    return ResilientAzureOpenAIChatModel


def api_version(config: ProviderConfig) -> str:
    return str(config.extra_config.get("api_version") or "").strip()


@register
class AzureOpenAIProvider(Provider):
    provider_type = ProviderType.AZURE_OPENAI

    def build(self, config: ProviderConfig) -> Any:
        endpoint = self.base_url(config)
        return build_openai_compatible(
            config,
            base_url=endpoint,
            model_class=azure_chat_model_class(),
            azure_endpoint=endpoint,
            api_version=api_version(config),
            deployment=str(config.extra_config.get("deployment") or config.model_name),
        )

    def test_request(self, config: ProviderConfig) -> TestRequest:
        url = str(
            httpx.URL(
                f"{self.base_url(config)}/openai/models",
                params={"api-version": api_version(config)},
            )
        )
        headers = {"api-key": config.api_key} if config.api_key else {}
        return TestRequest("GET", url, headers=headers)

    def test_detail(self, config: ProviderConfig, response: httpx.Response) -> str:
        return model_list_detail(config, response)
