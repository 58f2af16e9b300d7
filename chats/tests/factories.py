"""Factories for chats: chats, messages (a tree) and runs."""

from __future__ import annotations

import factory

from accounts.tests.factories import UserFactory
from agents.tests.factories import AgentVersionFactory
from chats.models import Chat, ChatMessage, Run


class ChatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Chat

    user = factory.SubFactory(UserFactory)
    agent_version = factory.SubFactory(AgentVersionFactory)
    agent = factory.SelfAttribute("agent_version.agent")
    title = factory.Sequence(lambda n: f"Chat {n}")


class ChatMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatMessage

    chat = factory.SubFactory(ChatFactory)
    role = ChatMessage.Role.USER
    content = "Hello"


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    user = factory.SubFactory(UserFactory)
    agent_version = factory.SubFactory(AgentVersionFactory)
    agent = factory.SelfAttribute("agent_version.agent")
    source = Run.Source.ONEOFF
    input = factory.LazyFunction(lambda: {"text": "Hello", "context": {}})
