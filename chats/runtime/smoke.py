"""The review smoke run: a submitted version answers one message, on the model it is given.

``agents.checks_review.check_smoke_run`` calls :func:`smoke_run` (``ChatsConfig.ready``
registers it) with the offline demo model — never the version's own model, which may be
a paid provider. It goes through the runtime's own pieces: the configuration snapshot and
persona rendering of ``builder``, the chat model built by the provider layer, the agent
type's strategy with AgentScope's agent loop, and the translator that turns its stream
into AG-UI events (counted, then dropped). What a run would fail with, it fails with: the
same RUN_ERROR code and message.

It is not a user's run, so it writes no Run, chat, message or event row and publishes
nothing: it never shows in chat lists, run history or statistics. On purpose it differs
from a chat run in that

- **no tool is offered to the model** (built-in tools, knowledge search): a check must not
  execute anything with side effects or costs, and a tool needing approval would park the
  run. The tools the configuration enables are reported instead;
- the message is the only turn (no history); persona variables take their defaults;
- it is bounded by ``timeout`` seconds: no retries, heartbeat or stop flag.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.utils.translation import gettext as _

from agents.checks_review import COMPLETED, FAILED, TIMEOUT, SmokeRun
from agents.config import normalize_config
from agents.models import AgentVersion
from chats.runtime.errors import RunFailure

logger = logging.getLogger(__name__)


def smoke_context(version: AgentVersion, *, llm_model: Any, prompt: str) -> Any:
    """The ``RunContext`` of a smoke run of ``version`` by its developer (RunFailure
    ``invalid_config`` when the snapshot is not an object, as for a real run)."""
    from chats.runtime.builder import RunContext, render_persona

    config = normalize_config(version.config or {})
    if not isinstance(config, dict):
        raise RunFailure("invalid_config", _("The agent's configuration is not valid."))
    agent = version.agent
    user = agent.developer
    system_prompt, few_shot, variables = render_persona(
        config,
        agent_name=agent.name,
        user=user,
        locale=user.language or settings.LANGUAGE_CODE,
    )
    ident = str(uuid.uuid4())
    return RunContext(
        run_id=ident,
        attempt=1,
        chat_id=None,
        message_id=ident,
        thread_id=ident,
        agent_name=agent.name,
        agent_type=str(config.get("agent_type") or "react"),
        version_label=version.version,
        config=config,
        system_prompt=system_prompt,
        few_shot=few_shot,
        history=[],
        user_text=prompt,
        llm_model=llm_model,
        user=user,
        variables=variables,
    )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def smoke_run(version: AgentVersion, *, llm_model: Any, prompt: str, timeout: float) -> SmokeRun:
    """Run ``version`` once on ``llm_model`` with ``prompt`` (see the module docstring).

    Sync, for the review task: the run executes on a private event loop (or the server's,
    when called from a thread it serves)."""
    from chats.runtime.builder import ensure_agentscope

    ensure_agentscope()
    started = time.monotonic()
    try:
        ctx = smoke_context(version, llm_model=llm_model, prompt=prompt)
    except RunFailure as exc:
        return SmokeRun(
            status=FAILED, code=exc.code, message=exc.message, duration_ms=_elapsed_ms(started)
        )
    return async_to_sync(_execute)(ctx, time_limit=timeout, started=started)


async def _execute(ctx: Any, *, time_limit: float, started: float) -> SmokeRun:
    from chats.runtime import tools
    from chats.runtime.builder import build_chat_model_sync
    from chats.runtime.strategies import STRATEGIES, React, strategy_for
    from chats.runtime.translate import Translator
    from integrations.llm import ProviderError, aclose_chat_model

    events: list[dict[str, Any]] = []
    translator = Translator(events.append, run_id=ctx.run_id, message_id=ctx.message_id)
    status, code, message = COMPLETED, "", ""
    chat_model = None
    try:
        chat_model = await sync_to_async(build_chat_model_sync)(ctx)
        strategy = strategy_for(ctx, chat_model, translator, tools_enabled=False)
        async with asyncio.timeout(time_limit):
            await strategy.run()
    except TimeoutError:
        status = TIMEOUT
    except (RunFailure, ProviderError) as exc:
        status, code, message = FAILED, exc.code or "provider_error", exc.message
    except Exception:  # noqa: BLE001 - reported like the runtime reports it
        # The check runs the demo model, which has no key that could leak into the log.
        logger.exception(
            "smoke run of agent %s %s failed unexpectedly", ctx.agent_name, ctx.version_label
        )
        status, code = FAILED, "internal_error"
        message = _("The agent failed unexpectedly. Try again.")
    finally:
        if chat_model is not None:
            try:
                await aclose_chat_model(chat_model)
            except Exception:  # noqa: BLE001 - closing must not mask the outcome
                logger.warning("smoke run: closing the model client failed")
    # What a chat run of this version would offer the model (knowledge search only for
    # the agent types that retrieve).
    retrieves = STRATEGIES.get(ctx.agent_type, React).retrieves
    enabled = tools.tool_specs(ctx.config, user_id=str(ctx.user.pk), with_knowledge=retrieves)
    return SmokeRun(
        status=status,
        answer=translator.answer,
        code=code,
        message=message,
        duration_ms=_elapsed_ms(started),
        event_count=len(events),
        tools_not_offered=[spec.name for spec in enabled],
    )
