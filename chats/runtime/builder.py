"""Everything a run needs, loaded from the database, and the AgentScope agents built from it.

:func:`prepare` (sync, in the run's database thread) reads the pinned ``AgentVersion``'s
normalised configuration, resolves the LLM model, renders the persona and loads the
conversation memory into a :class:`RunContext` of plain data. :func:`make_agent` builds an
``agentscope.agent.Agent`` on the run's event loop from it; the chat model is built per
run (clients are bound to the loop that uses them, NOTES: pitfall 2) and closed at the
end by the executor.

Memory (``config.memory``): the conversation path — the parent chain from the chat's root
to the user message of this run — keeping the last ``window`` usable messages (the user
message included). Failed, deleted and empty messages, system and tool messages are left
out. One-off runs have no history: their input text is the only message.
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from agents.config import normalize_config
from chats.models import ChatMessage, Run, RunStep
from chats.runtime import persona
from chats.runtime.errors import RunFailure

logger = logging.getLogger(__name__)

AGENT_NAME = "assistant"
# Used when a version has no system prompt: some providers refuse an empty one.
DEFAULT_SYSTEM_PROMPT = "You are {agent_name}, a helpful assistant."
_agentscope_ready = False
_KEYLIKE = re.compile(
    r"(?i)(bearer\s+\S+|sk-[A-Za-z0-9_\-*.]{4,}|(api[_-]?key|token)\s*[=:]\s*\S+)"
)


class _ScrubFilter(logging.Filter):
    """AgentScope logs provider errors verbatim; providers echo keys back. Scrub them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _KEYLIKE.sub("***", message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        return True


def ensure_agentscope() -> None:
    """Import AgentScope once per process and hand its logger to Django's logging.

    Importing it installs an INFO handler on stderr for logger ``"as"`` with propagation
    off (NOTES: pitfall 6); we remove it so our handlers and levels apply.
    """
    global _agentscope_ready
    if _agentscope_ready:
        return
    import agentscope
    import agentscope.agent  # noqa: F401 - the expensive import, once
    import agentscope.model  # noqa: F401

    as_logger = logging.getLogger("as")
    as_logger.handlers.clear()
    as_logger.propagate = True
    configured = (getattr(settings, "LOGGING", {}) or {}).get("loggers", {}).get("as")
    as_logger.setLevel(logging.NOTSET if configured else logging.WARNING)
    as_logger.addFilter(_ScrubFilter())
    _cache_tool_schemas()
    agentscope.set_id_factory(_entity_id)
    _agentscope_ready = True


_ids: dict[str, Any] = {"pid": None}


def _entity_id() -> str:
    """AgentScope gives every event, block and message an id from ``uuid4()`` — several per
    streamed token, each a ``getrandom`` call (10–40 µs here). A random per-process prefix
    and a counter are as unique for its purposes, at a fraction of the cost (new prefix
    after a fork, so pool processes never share ids)."""
    pid = os.getpid()
    if _ids["pid"] != pid:
        _ids.update(pid=pid, prefix=uuid.uuid4().hex[:16], counter=itertools.count())
    return f"{_ids['prefix']}{next(_ids['counter']):016x}"


def _cache_tool_schemas() -> None:
    """Every ``Agent`` builds the same tool schemas again with ``pydantic.create_model``
    (its context-compression tool, the toolkit's meta tool): ~4 ms per agent, on the way
    to the first token of every run. Cache them by function code / tool groups. Pinned
    AgentScope 2.0.x internals; if they change, nothing is cached (and nothing breaks)."""
    try:
        from agentscope.tool import _adapters
        from agentscope.tool._builtin import _meta
    except ImportError:  # pragma: no cover - a different AgentScope layout
        return
    extract = getattr(_adapters, "_extract_input_schema", None)
    reset_schema = getattr(getattr(_meta, "ResetTools", None), "input_schema", None)
    if extract is None or not isinstance(reset_schema, property):
        return
    schemas: dict[Any, dict] = {}

    def cached_extract(func: Any) -> dict:
        code = getattr(getattr(func, "__func__", func), "__code__", None)
        if code is None:
            return extract(func)
        key = (code, getattr(func, "__doc__", None))
        if key not in schemas:
            schemas[key] = extract(func)
        return copy.deepcopy(schemas[key])

    def cached_reset_schema(self: Any) -> dict:
        key = ("reset_tools", *((g.name, g.description) for g in self.groups if g.name != "basic"))
        if key not in schemas:
            schemas[key] = reset_schema.fget(self)
        return copy.deepcopy(schemas[key])

    _adapters._extract_input_schema = cached_extract
    _meta.ResetTools.input_schema = property(cached_reset_schema)
    describe = getattr(_adapters, "_extract_func_description", None)
    if describe is not None:
        # Parses the same docstrings (the built-in tools') for every Agent: ~0.3 ms each.
        _adapters._extract_func_description = functools.lru_cache(maxsize=512)(describe)


@dataclass
class RunContext:
    """Plain data for one execution (no lazy database access after :func:`prepare`)."""

    run_id: str
    attempt: int
    chat_id: str | None
    message_id: str  # the AG-UI message id of the answer (assistant message or run id)
    thread_id: str
    agent_name: str
    agent_type: str
    version_label: str
    config: dict[str, Any]
    system_prompt: str
    few_shot: list[tuple[str, str]]
    history: list[tuple[str, str]]
    user_text: str
    llm_model: Any
    user: Any
    step_offset: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    # The user's own key for the model's provider (None: they have none), when the claim
    # loaded it; by default not loaded, and the key resolution reads it.
    own_key: Any = field(default_factory=lambda: _key_not_loaded())

    @property
    def model_config(self) -> dict[str, Any]:
        return self.config.get("model") or {}


def _key_not_loaded() -> Any:
    from integrations.llm.base import KEY_NOT_LOADED

    return KEY_NOT_LOADED


def resolve_llm_model(config: dict[str, Any], *, loaded: Any = None) -> Any:
    """The version's model, or the platform default when it names none. ``loaded``: the
    model row already read with the run (used when it is the one the config names)."""
    from integrations.models import LLMModel
    from integrations.selectors import default_llm_model

    model_id = (config.get("model") or {}).get("llm_model_id")
    if model_id:
        if loaded is not None and str(loaded.pk) == str(model_id):
            llm = loaded
        else:
            llm = LLMModel.objects.filter(pk=model_id).first()
        if llm is None:
            raise RunFailure(
                "model_not_found", _("The model this agent is configured with no longer exists.")
            )
        if not llm.is_active:
            raise RunFailure(
                "model_inactive",
                _("The model %(model)s is not active.") % {"model": llm.display_name},
            )
        return llm
    llm = default_llm_model()
    if llm is None:
        raise RunFailure(
            "no_model", _("No default model is configured; ask an administrator to set one.")
        )
    return llm


def _usable(row: dict[str, Any]) -> bool:
    if row["status"] == ChatMessage.Status.DELETED or not (row["content"] or "").strip():
        return False
    if row["role"] == ChatMessage.Role.USER:
        return True
    return (
        row["role"] == ChatMessage.Role.ASSISTANT
        and row["status"] == ChatMessage.Status.SENT
        and row["message_type"] == ChatMessage.MessageType.TEXT
    )


#: The longest path :func:`conversation_path` walks (a guard, far beyond any memory window).
MAX_PATH = 10_000

_PATH_SQL = """
WITH RECURSIVE path(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM {table} WHERE id = %s AND chat_id = %s
    UNION ALL
    SELECT m.id, m.parent_id, path.depth + 1
    FROM {table} m JOIN path ON m.id = path.parent_id
    WHERE m.chat_id = %s AND path.depth < %s
)
SELECT m.id, m.role, m.status, m.message_type, m.content
FROM path JOIN {table} m ON m.id = path.id
ORDER BY path.depth DESC
"""


def conversation_path(run: Run, window: int) -> tuple[list[tuple[str, str]], str]:
    """``(history, user_text)``: the last ``window`` usable messages on the path to the
    run's user message (that message is ``user_text``, the rest is ``history``).

    One recursive query walks from the user message up its parents: the path's rows
    only, not the whole chat (long chats with many branches cost what their path costs)."""
    if run.user_message_id is None or run.chat_id is None:
        return [], str((run.input or {}).get("text") or "")
    from django.db import connection

    field = ChatMessage._meta.pk
    chat_id = ChatMessage._meta.get_field("chat").target_field.get_db_prep_value(
        run.chat_id, connection
    )
    start = field.get_db_prep_value(run.user_message_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            _PATH_SQL.format(table=connection.ops.quote_name(ChatMessage._meta.db_table)),
            [start, chat_id, chat_id, MAX_PATH],
        )
        fetched = cursor.fetchall()
    names = ("id", "role", "status", "message_type", "content")
    rows = [dict(zip(names, row, strict=True)) for row in fetched]
    for row in rows:
        row["id"] = field.to_python(row["id"])
    current = rows[-1] if rows and rows[-1]["id"] == run.user_message_id else None
    user_text = (current or {}).get("content") or str((run.input or {}).get("text") or "")
    usable = [row for row in rows if _usable(row) and row["id"] != run.user_message_id]
    usable = usable[-(max(1, window) - 1) :]
    if window <= 1:
        usable = []
    return [(row["role"], row["content"]) for row in usable], user_text


def render_persona(
    config: dict[str, Any],
    *,
    agent_name: str,
    user: Any,
    locale: str,
    overrides: dict[str, Any] | None = None,
) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
    """``(system_prompt, few_shot, variables)``: the persona rendered for ``user`` now
    (the default system prompt when the template renders empty)."""
    platform = persona.platform_variables(
        user_name=user.display_name or user.username,
        agent_name=agent_name,
        locale=locale,
        now=timezone.localtime(),
    )
    variables = persona.persona_variables(config, platform=platform, overrides=overrides)
    system_prompt = persona.render_system_prompt(config, variables).strip()
    return (
        system_prompt or DEFAULT_SYSTEM_PROMPT.format(agent_name=agent_name),
        persona.few_shot_turns(config, variables),
        variables,
    )


RUN_RELATIONS = ("agent", "agent_version", "user", "chat")
# Large columns of those relations a run never reads (loaded on the way to the first token).
RUN_DEFERRED = (
    "agent__description",
    "agent_version__changelog",
    "agent_version__review_note",
    "agent_version__check_results",
    "agent_version__persona_scores",
)


def prepare(run: Run | str) -> RunContext:
    """Load a claimed run's context (raises RunFailure for configuration problems).

    ``run`` may be a Run loaded with :data:`RUN_RELATIONS` (as the claim does), which
    saves a query on the way to the first token."""
    if not isinstance(run, Run):
        run = Run.objects.select_related(*RUN_RELATIONS).defer(*RUN_DEFERRED).get(pk=run)
    from chats.runtime import claim_sql

    config = normalize_config(run.agent_version.config or {})
    if not isinstance(config, dict):
        raise RunFailure("invalid_config", _("The agent's configuration is not valid."))
    llm_model = resolve_llm_model(
        config,
        loaded=claim_sql.preloaded_llm_model(run, (config.get("model") or {}).get("llm_model_id")),
    )
    memory = config.get("memory") or {}
    history, user_text = conversation_path(run, int(memory.get("window") or 20))
    if not user_text.strip():
        raise RunFailure("empty_input", _("There is no message to answer."))
    user = run.user
    context = dict((run.input or {}).get("context") or {})
    overrides = {
        **((run.chat.context or {}).get("variables") or {} if run.chat else {}),
        **(context.get("variables") or {}),
    }
    system_prompt, few_shot, variables = render_persona(
        config,
        agent_name=run.agent.name,
        user=user,
        locale=str(context.get("locale") or user.language or settings.LANGUAGE_CODE),
        overrides=overrides,
    )
    message_id = str(run.assistant_message_id or run.id)
    return RunContext(
        run_id=str(run.id),
        attempt=run.attempt,
        chat_id=str(run.chat_id) if run.chat_id else None,
        message_id=message_id,
        thread_id=str(run.chat_id or run.id),
        agent_name=run.agent.name,
        agent_type=str(config.get("agent_type") or "react"),
        version_label=run.agent_version.version,
        config=config,
        system_prompt=system_prompt,
        few_shot=few_shot,
        history=history,
        user_text=user_text,
        llm_model=llm_model,
        user=user,
        step_offset=RunStep.objects.filter(run_id=run.id).count() if run.attempt > 1 else 0,
        variables=variables,
        own_key=claim_sql.preloaded_provider_key(run, llm_model.provider_type),
    )


def build_chat_model_sync(ctx: RunContext, *, shared_on: Any = None) -> Any:
    """The AgentScope chat model for the run (sync: key resolution reads the database).

    ``shared_on``: the long-lived loop the run executes on (worker or server loop), whose
    runs share chat models and their connections (``integrations.llm.base``)."""
    from integrations.llm import ProviderError, build_chat_model

    model = ctx.model_config
    try:
        return build_chat_model(
            ctx.llm_model,
            user=ctx.user,
            temperature=model.get("temperature"),
            max_tokens=model.get("max_tokens"),
            params=model.get("params") or {},
            stream=bool(model.get("stream", True)),
            shared_on=shared_on,
            own_key=ctx.own_key,
        )
    except ProviderError as exc:
        raise RunFailure(exc.code, exc.message, transient=exc.transient) from None


def messages(
    ctx: RunContext, *, user_text: str | None = None, with_history: bool = True
) -> list[Any]:
    """Few-shot turns, the remembered conversation and the user's message as AgentScope
    ``Msg`` objects (roles user/assistant only, text blocks only)."""
    from agentscope.message import AssistantMsg, UserMsg

    turns = list(ctx.few_shot)
    if with_history:
        turns.extend(ctx.history)
    turns.append(("user", ctx.user_text if user_text is None else user_text))
    return [
        UserMsg(name="user", content=text)
        if role == "user"
        else AssistantMsg(name=AGENT_NAME, content=text)
        for role, text in turns
    ]


def make_agent(
    chat_model: Any, *, system_prompt: str, toolkit: Any = None, max_iters: int = 10
) -> Any:
    """An AgentScope agent for one part of a run.

    Model retries live in the provider layer (``ModelConfig(max_retries=0)``); runtime
    state injection (a "current time" message per reply) is off so prompts stay as the
    developer wrote them (NOTES: pitfall 8); cancellation re-raises so the executor sees
    a stop (NOTES: pitfall 4).
    """
    from agentscope.agent import Agent, InjectionConfig, ModelConfig, ReActConfig

    return Agent(
        name=AGENT_NAME,
        system_prompt=system_prompt,
        model=chat_model,
        toolkit=toolkit,
        model_config=ModelConfig(max_retries=0),
        react_config=ReActConfig(max_iters=max_iters, interruption_raise_cancelled_error=True),
        injection_config=InjectionConfig(inject_runtime_state=False),
    )
