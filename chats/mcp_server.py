"""MCP server at ``/mcp/`` (streamable HTTP, SPEC §5.3): MCP clients (IDEs, desktop
assistants) use the user's store agents as tools.

Auth
    Every HTTP request carries ``Authorization: Bearer sk-…`` (a personal API key; a JWT
    access token works too). Without a valid one the answer is 401 with a JSON-RPC error
    body and nothing reaches the MCP layer.

Tools
    One per agent the user installed that can chat: ``ask_<slug>`` (the slug reduced to
    ``[A-Za-z0-9_-]``, at most 64 characters — what MCP clients and the model APIs behind
    them accept; a clash gets a short suffix of the agent id). Input ``{message: string,
    chat_id?: string}``. A call opens a new chat with the agent (or continues ``chat_id``,
    one of the user's chats with that agent), sends the message like the chat UI does
    (``messaging.chat_message_post``: same limits, same audit log), waits for the run to
    end and returns the answer as text plus ``structuredContent {answer, chat_id, run_id,
    status}`` (``chat_id`` continues the conversation). A failed run is a tool error
    (``isError``) with the reason. While the answer streams, a client that sent a
    ``progressToken`` receives progress notifications carrying the new text; a client that
    cancels the call stops the run.

Transport
    The SDK's ``StreamableHTTPSessionManager`` in stateless mode: no session lives in the
    process, so any web process behind a load balancer can serve any request (SPEC §2.1).
    It is started lazily on the event loop of the first request (daphne has no lifespan
    events) and stopped by ``shutdown()`` from the ASGI lifespan handler.
    ``agentstore.asgi`` routes ``/mcp`` and ``/mcp/`` here; everything else goes to Django.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import mcp.types as types
from django.conf import settings
from django.utils.translation import gettext as _
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from accounts import tokens
from accounts.models import User
from agents.models import Agent
from agents.selectors import installs_for, store_agents
from agentstore.errors import DomainError, NotFound, ValidationFailed
from chats import chat_selectors, messaging, services, streaming

logger = logging.getLogger(__name__)

PATHS = ("/mcp", "/mcp/")
SCOPE_KEY = "agentstore.mcp"
TOOL_PREFIX = "ask_"
TOOL_NAME_MAX = 64
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "minLength": 1, "description": "What to ask the agent."},
        "chat_id": {
            "type": "string",
            "description": "Continue this chat (the chat_id of an earlier answer); "
            "leave out to start a new conversation.",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "chat_id": {"type": "string"},
        "run_id": {"type": "string"},
        "status": {"type": "string"},
    },
    "required": ["answer", "chat_id", "run_id", "status"],
}


# --- who is calling ---------------------------------------------------------------------------


@dataclass
class Caller:
    user: User
    # What audit_record reads from a request: the key (its prefix), how, from where.
    request: Any


def _bearer(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            raw = value.decode("latin-1").strip()
            if raw[:7].lower() == "bearer ":
                return raw[7:].strip()
        elif name == b"x-api-key":
            return value.decode("latin-1").strip()
    return ""


def _meta(scope: dict[str, Any]) -> dict[str, str]:
    meta = {}
    client = scope.get("client")
    if client:
        meta["REMOTE_ADDR"] = str(client[0])
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            meta["HTTP_X_FORWARDED_FOR"] = value.decode("latin-1")
    return meta


def authenticate(token: str, meta: dict[str, str]) -> Caller:
    """The caller of a bearer ``token`` (API key or JWT); raises ``tokens.TokenError``."""
    if not token:
        raise tokens.TokenError(_("Send your API key as 'Authorization: Bearer sk-…'."))
    if tokens.looks_like_api_key(token):
        key = tokens.resolve_api_key(token)
        return Caller(key.user, SimpleNamespace(META=meta, auth=key, auth_via="mcp"))
    user, claims = tokens.resolve_access_token(token)
    return Caller(user, SimpleNamespace(META=meta, auth=claims, auth_via="mcp"))


def current_caller() -> Caller:
    request = server.request_context.request
    return request.scope[SCOPE_KEY]


# --- tools --------------------------------------------------------------------------------------


def tool_name(agent: Agent) -> str:
    ascii_slug = unicodedata.normalize("NFKD", agent.slug).encode("ascii", "ignore").decode()
    cleaned = _NOT_NAME.sub("_", ascii_slug).strip("_-")
    return (TOOL_PREFIX + (cleaned or agent.pk.hex[:12]))[:TOOL_NAME_MAX]


def agent_tools(user: User) -> dict[str, Agent]:
    """Tool name → agent, for the agents ``user`` installed that can chat."""
    in_store = store_agents().filter(mode=Agent.Mode.CHAT).values("pk")
    installs = installs_for(user).filter(agent__in=in_store).order_by("agent__slug", "agent_id")
    tools: dict[str, Agent] = {}
    for install in installs:
        name = tool_name(install.agent)
        if name in tools:
            suffix = "_" + install.agent.pk.hex[:6]
            name = name[: TOOL_NAME_MAX - len(suffix)] + suffix
        tools[name] = install.agent
    return tools


def tool_for(name: str, agent: Agent) -> types.Tool:
    about = agent.short_description or agent.name
    return types.Tool(
        name=name,
        title=agent.name,
        description=_(
            "Ask the AgentStore agent “%(name)s”: %(about)s Returns its answer; pass the "
            "returned chat_id to continue the conversation."
        )
        % {"name": agent.name, "about": about.rstrip(".") + "."},
        inputSchema=INPUT_SCHEMA,
        outputSchema=OUTPUT_SCHEMA,
        annotations=types.ToolAnnotations(
            title=agent.name, readOnlyHint=False, destructiveHint=False, openWorldHint=True
        ),
    )


@dataclass
class StartedCall:
    run_id: str
    chat_id: str


def start_call(caller: Caller, name: str, arguments: dict[str, Any]) -> StartedCall:
    """Open (or continue) the chat and post the message (sync, one hop)."""
    agent = agent_tools(caller.user).get(name)
    if agent is None:
        raise NotFound(_("There is no tool %(name)s.") % {"name": name[:100]})
    message = arguments.get("message")
    chat_ref = arguments.get("chat_id")
    if not isinstance(message, str) or not message.strip():
        raise ValidationFailed(details={"message": [_("Write a message first.")]})
    if chat_ref is not None and not isinstance(chat_ref, str):
        raise ValidationFailed(details={"chat_id": [_("Must be a string.")]})
    from django.db import transaction

    from agentstore.db import pipelined

    with transaction.atomic(), pipelined():
        if chat_ref:
            chat = chat_selectors.chat_for(caller.user, chat_ref)
            if chat.agent_id != agent.pk:
                raise ValidationFailed(details={"chat_id": [_("This chat is with another agent.")]})
        else:
            chat = messaging.chat_create(caller.user, agent_id=agent.pk, request=caller.request)
        turn = messaging.chat_message_post(
            caller.user, chat=chat, content=message, request=caller.request, via="mcp"
        )
    return StartedCall(run_id=str(turn.run.pk), chat_id=str(chat.pk))


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], isError=True
    )


def _domain_message(exc: DomainError) -> str:
    details = exc.details if isinstance(exc.details, dict) else {}
    problems = [
        f"{field}: {items[0]}"
        for field, items in details.items()
        if isinstance(items, list) and items
    ]
    return "; ".join(problems) or exc.message


def _stop(caller: Caller, run_id: str) -> None:
    services.run_stop(caller.user, run_id=run_id, request=caller.request)


server: Server = Server(
    "agentstore",
    version=getattr(settings, "APP_VERSION", None),
    instructions=(
        "Each tool asks one of your installed AgentStore agents. Pass chat_id from an "
        "answer to continue that conversation."
    ),
)


@server.list_tools()
async def list_tools() -> list[types.Tool]:
    caller = current_caller()
    tools = await streaming.db(agent_tools, caller.user)
    return [tool_for(name, agent) for name, agent in tools.items()]


@server.call_tool()
async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    caller = current_caller()
    context = server.request_context
    try:
        started = await streaming.db(start_call, caller, name, arguments or {})
    except DomainError as exc:
        return _error(_domain_message(exc))
    token = getattr(context.meta, "progressToken", None) if context.meta else None
    streamed = 0

    async def report(event: dict[str, Any]) -> None:
        nonlocal streamed
        if token is None or event.get("type") != streaming.TEXT_DELTA:
            return
        streamed += len(event.get("delta") or "")
        with contextlib.suppress(Exception):  # progress is a courtesy, never fatal
            await context.session.send_progress_notification(
                token, float(streamed), message=event.get("delta") or ""
            )

    try:
        result = await streaming.run_result(started.run_id, fresh=True, on_event=report)
    except asyncio.CancelledError:
        # The client cancelled the call (or went away): nobody wants this answer.
        with contextlib.suppress(Exception):
            await asyncio.shield(streaming.db(_stop, caller, started.run_id))
        raise
    except streaming.FollowTimeout:
        return _error(_("The agent did not answer in time."))
    structured = {
        "answer": result.text,
        "chat_id": started.chat_id,
        "run_id": started.run_id,
        "status": result.status,
    }
    if result.status == "failed":
        reason = result.error_message or _("The agent failed to answer.")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=reason)],
            structuredContent=structured,
            isError=True,
        )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=result.text)],
        structuredContent=structured,
        isError=False,
    )


# --- the ASGI side -------------------------------------------------------------------------------


class Endpoint:
    """The session manager of the running event loop, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future | None = None
        self._task: asyncio.Task | None = None

    async def manager(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._ready is None:
            # First request on this loop (a new server process, or a new test server).
            self._loop = loop
            self._ready = loop.create_future()
            manager = StreamableHTTPSessionManager(app=server, stateless=True, json_response=False)
            # A context of its own: the manager's tasks outlive this request.
            self._task = loop.create_task(
                self._run(manager, self._ready), context=contextvars.Context()
            )
        return await asyncio.shield(self._ready)

    @staticmethod
    async def _run(manager: StreamableHTTPSessionManager, ready: asyncio.Future) -> None:
        try:
            async with manager.run():
                ready.set_result(manager)
                await asyncio.Event().wait()  # until shutdown() cancels us
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            raise

    async def shutdown(self) -> None:
        task, self._task, self._ready, self._loop = self._task, None, None, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


endpoint = Endpoint()


async def _send_json(send: Any, status: int, body: dict[str, Any], headers=()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI entry point for ``/mcp``: authenticate, then hand over to the MCP transport."""
    if scope["type"] != "http":
        return
    try:
        caller = await streaming.db(authenticate, _bearer(scope), _meta(scope))
    except tokens.TokenError as exc:
        await _send_json(
            send,
            401,
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": exc.message}},
            headers=[(b"www-authenticate", b"Bearer")],
        )
        return
    manager = await endpoint.manager()
    await manager.handle_request({**scope, SCOPE_KEY: caller}, receive, send)


async def shutdown() -> None:
    await endpoint.shutdown()
