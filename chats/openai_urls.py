"""The OpenAI-compatible API, mounted at ``/v1/`` (see ``chats.openai_compat``)."""

from __future__ import annotations

from django.urls import path

from chats import openai_compat

urlpatterns = [
    path("models", openai_compat.models_list, name="openai-models"),
    path("models/<path:model>", openai_compat.model_detail, name="openai-model"),
    path("chat/completions", openai_compat.chat_completions, name="openai-chat-completions"),
]
