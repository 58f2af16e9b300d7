"""The MCP endpoint (``/mcp/``) driven by the ``mcp`` SDK's own client over streamable HTTP,
against a real uvicorn server running the ASGI application (embedded mode)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from agents.models import Agent
from chats.models import Chat, ChatMessage, Run
from chats.tests.interface_helpers import (  # noqa: F401 - fixtures
    api_key,
    demo_llm,
    install,
    server_fixture,
    store_agent,
    stream_db_connections_closed_fixture,
)

pytestmark = pytest.mark.usefixtures("transactional_db", "stream_db_connections_closed")


def with_session(server, key: str, body: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Open an MCP client session on ``/mcp/`` with ``key`` and run ``body`` in it."""

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=30.0) as http,
            streamable_http_client(f"{server.url}/mcp/", http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await body(session)

    return asyncio.run(main())


async def tool_names(session: ClientSession) -> list[str]:
    return [tool.name for tool in (await session.list_tools()).tools]


@pytest.fixture
def agent(developer):
    return store_agent(demo_llm(), slug="helper", developer=developer, name="Helper")


def test_tools_are_the_users_installed_agents(server, user, other_user, developer, agent):
    llm = demo_llm()
    theirs = store_agent(llm, slug="theirs", developer=developer)
    store_agent(llm, slug="not-installed", developer=developer)
    triggers = store_agent(llm, slug="cron", developer=developer, mode=Agent.Mode.TRIGGERS)
    install(user, agent)
    install(user, triggers)
    install(other_user, theirs)

    mine = with_session(server, api_key(user), tool_names)
    their_tools = with_session(server, api_key(other_user), tool_names)

    assert mine == ["ask_helper"]
    assert their_tools == ["ask_theirs"]


def test_a_tool_describes_its_agent_and_arguments(server, user, agent):
    install(user, agent)

    async def first_tool(session: ClientSession):
        return (await session.list_tools()).tools[0]

    tool = with_session(server, api_key(user), first_tool)

    assert tool.title == "Helper"
    assert tool.inputSchema["required"] == ["message"]
    assert set(tool.inputSchema["properties"]) == {"message", "chat_id"}
    assert tool.outputSchema["required"] == ["answer", "chat_id", "run_id", "status"]


@pytest.mark.parametrize(
    ("slug", "name"),
    [("helper-bot", "ask_helper-bot"), ("écrivain", "ask_ecrivain"), ("写作", None)],
    ids=["hyphen", "accents", "no-ascii"],
)
def test_tool_names_keep_to_the_mcp_charset(server, user, developer, slug, name):
    agent = store_agent(demo_llm(), slug=slug, developer=developer)
    install(user, agent)

    names = with_session(server, api_key(user), tool_names)

    assert names == [name or f"ask_{agent.pk.hex[:12]}"]


def test_calling_a_tool_runs_the_agent_and_returns_its_answer(server, user, agent):
    install(user, agent)

    async def ask(session: ClientSession):
        return await session.call_tool("ask_helper", {"message": "Hi from my IDE"})

    result = with_session(server, api_key(user), ask)

    run = Run.objects.get(user=user)
    assert result.isError is False
    assert "You said: “Hi from my IDE”" in result.structuredContent["answer"]
    assert result.structuredContent == {
        "answer": run.output,
        "chat_id": str(run.chat_id),
        "run_id": str(run.pk),
        "status": "completed",
    }
    assert result.content[0].text == run.output
    assert Chat.objects.get(pk=run.chat_id).user == user


def test_chat_id_continues_the_conversation(server, user, agent):
    install(user, agent)

    async def ask_twice(session: ClientSession):
        first = await session.call_tool("ask_helper", {"message": "First"})
        chat_id = first.structuredContent["chat_id"]
        return await session.call_tool("ask_helper", {"message": "Second", "chat_id": chat_id})

    second = with_session(server, api_key(user), ask_twice)

    chat = Chat.objects.get(user=user)
    assert second.structuredContent["chat_id"] == str(chat.pk)
    assert list(
        ChatMessage.objects.filter(chat=chat, role="user")
        .order_by("created_at")
        .values_list("content", flat=True)
    ) == ["First", "Second"]


def test_another_users_agent_and_chat_are_refused(server, user, other_user, developer, agent):
    private = store_agent(demo_llm(), slug="private", developer=developer)
    install(user, agent)
    install(user, private)
    install(other_user, agent)
    alices = with_session(
        server, api_key(user), lambda session: session.call_tool("ask_helper", {"message": "Mine"})
    )

    async def intrude(session: ClientSession):
        tool = await session.call_tool("ask_private", {"message": "x"})
        chat = await session.call_tool(
            "ask_helper", {"message": "x", "chat_id": alices.structuredContent["chat_id"]}
        )
        return tool, chat

    unknown_tool, foreign_chat = with_session(server, api_key(other_user), intrude)

    assert unknown_tool.isError is True
    assert unknown_tool.content[0].text == "There is no tool ask_private."
    assert foreign_chat.isError is True
    assert foreign_chat.content[0].text == "Not found."
    assert Run.objects.filter(user=other_user).count() == 0


@pytest.mark.parametrize("key", ["sk-wrong-key", ""], ids=["wrong", "missing"])
def test_a_wrong_key_is_refused_before_mcp(server, agent, key):
    headers = {"Accept": "application/json, text/event-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"

    response = httpx.post(
        f"{server.url}/mcp/",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers=headers,
        timeout=10.0,
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == -32001


def test_the_sdk_client_cannot_connect_with_a_wrong_key(server, agent):
    with pytest.raises(BaseException) as error:  # noqa: PT011 - the SDK wraps it in a group
        with_session(server, "sk-wrong-key", tool_names)

    assert "401" in repr(error.value)
