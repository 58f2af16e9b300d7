"""LLM providers behind one interface (STYLE §1, §3): see :mod:`integrations.llm.base`.

Importing this package registers every provider type (one module each); none of them
imports AgentScope until a model is built.
"""

from __future__ import annotations

from integrations.llm import (  # noqa: F401 - each module registers its provider
    anthropic,
    azure_openai,
    custom,
    dashscope,
    demo,
    ollama,
    openai,
)
from integrations.llm.base import (  # noqa: F401
    ProviderError,
    aclose_chat_model,
    build_chat_model,
    resolve_api_key,
    stream_chat,
)
