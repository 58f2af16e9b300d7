from __future__ import annotations

import factory
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents.config import default_config
from agents.models import Agent, AgentVersion, Category, Install, Rating
from integrations.models import MCPConnection, Skill, SkillVersion
from knowledge.models import KnowledgeBase


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    name = factory.Sequence(lambda n: f"Agent {n}")
    slug = factory.Sequence(lambda n: f"agent-{n}")
    short_description = "Does useful things."
    developer = factory.SubFactory(UserFactory, role=Role.DEVELOPER)


class AgentVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentVersion

    agent = factory.SubFactory(AgentFactory)
    version = factory.Sequence(lambda n: f"0.{n}.0")
    changelog = "First version."
    config = factory.LazyFunction(default_config)


def published_agent(*, developer=None, version: str = "1.0.0", **agent_fields) -> Agent:
    """A store agent with an approved current version (built directly, not via review)."""
    if developer is not None:
        agent_fields["developer"] = developer
    agent = AgentFactory(status=Agent.Status.PUBLISHED, published_at=timezone.now(), **agent_fields)
    current = AgentVersionFactory(
        agent=agent,
        version=version,
        status=AgentVersion.Status.APPROVED,
        is_current=True,
        check_status=AgentVersion.CheckStatus.PASSED,
        reviewed_at=timezone.now(),
    )
    agent.current_version = current
    agent.save(update_fields=["current_version"])
    return agent


class InstallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Install

    user = factory.SubFactory(UserFactory)
    agent = factory.SubFactory(AgentFactory)


class RatingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rating

    user = factory.SubFactory(UserFactory)
    agent = factory.SubFactory(AgentFactory)
    stars = 4


class KnowledgeBaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KnowledgeBase

    name = factory.Sequence(lambda n: f"KB {n}")
    owner = factory.SubFactory(UserFactory, role=Role.DEVELOPER)


class SkillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Skill

    name = factory.Sequence(lambda n: f"Skill {n}")
    slug = factory.Sequence(lambda n: f"skill-{n}")
    owner = factory.SubFactory(UserFactory, role=Role.DEVELOPER)


class SkillVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SkillVersion

    skill = factory.SubFactory(SkillFactory)
    version = "1.0.0"
    analysis = factory.LazyFunction(lambda: {"findings": []})


class MCPConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MCPConnection

    name = factory.Sequence(lambda n: f"MCP {n}")
    owner = factory.SubFactory(UserFactory, role=Role.DEVELOPER)
    url = "http://127.0.0.1:9/mcp"
    tools = factory.LazyFunction(lambda: [{"name": "search"}, {"name": "fetch"}])
    tools_fingerprint = "f" * 64
