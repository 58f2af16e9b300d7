"""Set-up shared by the tests of the HTTP interfaces (AG-UI SSE, OpenAI-compatible, MCP):
store agents on the demo model, installs and personal API keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accounts.models import User
from accounts.services import api_key_create
from agents.models import Agent, AgentVersion, Install
from agents.tests.factories import AgentVersionFactory
from chats import streaming
from chats.tests.runtime_helpers import agent_version, demo_model
from integrations.models import LLMModel


def demo_llm(token_delay_ms: int = 0) -> LLMModel:
    return demo_model(extra_config={"token_delay_ms": token_delay_ms} if token_delay_ms else {})


def store_agent(llm: LLMModel, *, slug: str, developer: User | None = None, **fields: Any) -> Agent:
    """A published agent (approved current version 1.0.0) answering with ``llm``."""
    version = agent_version(llm, developer=developer, agent_type="dialog")
    agent = version.agent
    agent.slug = slug
    agent.name = fields.pop("name", slug.replace("-", " ").title())
    for key, value in fields.items():
        setattr(agent, key, value)
    agent.save()
    return agent


def released_version(agent: Agent, version: str, *, current: bool = False) -> AgentVersion:
    """Another approved version of ``agent`` with the same configuration."""
    config = agent.current_version.config
    if current:
        AgentVersion.objects.filter(agent=agent, is_current=True).update(is_current=False)
    made = AgentVersionFactory(
        agent=agent,
        version=version,
        config=config,
        status=AgentVersion.Status.APPROVED,
        is_current=current,
        check_status=AgentVersion.CheckStatus.PASSED,
    )
    if current:
        agent.current_version = made
        agent.save(update_fields=["current_version"])
    return made


def install(user: User, agent: Agent) -> Install:
    return Install.objects.create(user=user, agent=agent, seen_version=agent.current_version)


def api_key(user: User) -> str:
    return api_key_create(user, name="tests")[1]


@pytest.fixture(name="stream_db_connections_closed")
def stream_db_connections_closed_fixture() -> Iterator[None]:
    """The streaming pool's threads keep their database connections open (as they should
    in a server); close them after the test so the test database can be dropped."""
    yield
    streaming.close_db_connections()


@pytest.fixture(name="server", scope="module")
def server_fixture(django_db_setup) -> Iterator[Any]:
    """One real uvicorn server (``tests.fixtures.servers``) for the whole module: starting
    and stopping one per test costs more than the tests. Tests still need
    ``transactional_db`` so the server's threads see their rows."""
    from tests.fixtures.servers import run_asgi_server

    with run_asgi_server() as handle:
        yield handle
