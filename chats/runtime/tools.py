"""Built-in tools an agent version may enable (``config.builtin_tools``) and their
permission policy.

Every tool is registered with an explicit AgentScope permission: ALLOW, unless the
version's ``tool_approval`` says ``"ask"`` for that tool name. AgentScope's own default
for function tools is to ask, which would park an unattended run forever (NOTES: pitfall
1), so nothing is left to the default. An "ask" tool call pauses the run (see
``chats.runtime.execute``).

Tools are coroutines: a sync tool would run on the event loop and block every other run
on it (NOTES: pitfall 3). A tool that raises becomes an error result the model sees; the
run goes on.

``python_exec`` and ``text_to_sql`` need the sandbox and database connections of later
issues; until they exist they are not registered (logged once per run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chats.runtime.loop import db_call

logger = logging.getLogger(__name__)

KNOWLEDGE_SEARCH = "knowledge_search"
# Tool names whose calls are recorded as RunStep kind "retrieval" instead of "tool_call".
RETRIEVAL_TOOLS = frozenset({KNOWLEDGE_SEARCH})


@dataclass(frozen=True)
class ToolSpec:
    """A tool before it is wrapped for AgentScope: a coroutine function and its name."""

    name: str
    func: Callable[..., Any]
    read_only: bool = True
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time.

    Args:
        timezone (str): An IANA time zone name, e.g. "UTC", "Europe/Paris", "Asia/Shanghai".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"Unknown time zone {timezone!r}; use an IANA name like 'UTC'.") from exc
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({timezone}, {now:%A})"


def _search_backend() -> Callable[..., list[dict[str, Any]]] | None:
    """``knowledge.retrieval.retrieve`` once the knowledge issue provides it."""
    try:
        from knowledge.retrieval import retrieve
    except ImportError:
        return None
    return retrieve


def knowledge_search_tool(knowledge: Mapping[str, Any], *, user_id: str) -> ToolSpec:
    kb_ids = [str(kb) for kb in knowledge.get("knowledge_base_ids") or []]
    top_k = int(knowledge.get("top_k") or 5)
    threshold = knowledge.get("score_threshold")

    async def knowledge_search(query: str) -> str:
        """Search the agent's knowledge bases for passages relevant to a question.

        Args:
            query (str): What to look for, in plain words.
        """
        backend = _search_backend()
        if backend is None:
            raise RuntimeError("Knowledge search is not available on this server yet.")
        hits = await db_call(backend)(
            knowledge_base_ids=kb_ids,
            query=query,
            top_k=top_k,
            score_threshold=threshold,
            user_id=user_id,
        )
        if not hits:
            return "No relevant passages found."
        lines = []
        for number, hit in enumerate(hits, start=1):
            source = hit.get("source") or hit.get("document") or ""
            lines.append(f"[{number}] {hit.get('text', '').strip()} (source: {source})")
        return "\n".join(lines)

    return ToolSpec(name=KNOWLEDGE_SEARCH, func=knowledge_search)


def tool_specs(config: Mapping[str, Any], *, user_id: str, with_knowledge: bool) -> list[ToolSpec]:
    """The built-in tools the configuration enables (``knowledge_search`` also when
    knowledge bases are configured and the agent type retrieves)."""
    enabled = list(config.get("builtin_tools") or [])
    knowledge = config.get("knowledge") or {}
    specs: list[ToolSpec] = []
    for name in enabled:
        if name == "current_time":
            specs.append(ToolSpec(name="current_time", func=current_time))
        elif name == KNOWLEDGE_SEARCH:
            continue  # added below, once, when there is something to search
        else:
            logger.info("built-in tool %s is not available yet; not registered", name)
    wants_knowledge = with_knowledge or KNOWLEDGE_SEARCH in enabled
    if wants_knowledge and knowledge.get("knowledge_base_ids"):
        specs.append(knowledge_search_tool(knowledge, user_id=user_id))
    return specs


def approval_policy(config: Mapping[str, Any], name: str) -> str:
    """``"ask"`` or ``"allow"`` for a tool name (default: allow)."""
    return "ask" if (config.get("tool_approval") or {}).get(name) == "ask" else "allow"


def build_toolkit(specs: list[ToolSpec], config: Mapping[str, Any]) -> Any:
    """One AgentScope Toolkit per run (shared toolkits are not safe, NOTES: pitfall 9)."""
    from agentscope.permission import PermissionBehavior, PermissionDecision
    from agentscope.tool import FunctionTool, Toolkit

    tools = []
    for spec in specs:
        ask = approval_policy(config, spec.name) == "ask"
        permission = PermissionDecision(
            behavior=PermissionBehavior.ASK if ask else PermissionBehavior.ALLOW,
            message=(
                f"{spec.name} needs approval before it runs."
                if ask
                else f"{spec.name} is allowed by the agent's configuration."
            ),
        )
        tools.append(
            FunctionTool(
                spec.func,
                name=spec.name,
                description=spec.description,
                # AgentScope allows read-only tools before it looks at the tool's own
                # decision, so an "ask" tool must not claim to be read-only.
                is_read_only=spec.read_only and not ask,
                permission=permission,
            )
        )
    return Toolkit(tools=tools)
