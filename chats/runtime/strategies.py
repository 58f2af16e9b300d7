"""Agent types (SPEC §4.1): how a run uses the model. Each strategy drives one or more
AgentScope agents and feeds their events to the translator.

``dialog``        one model call, no tools.
``react``         AgentScope's reasoning-acting loop with the version's tools.
``agentic_rag``   react with a ``knowledge_search`` tool when the version has knowledge
                  bases: the model decides whether and what to retrieve (RunSteps of kind
                  ``retrieval``). Without knowledge bases it behaves like react.
``plan_execute``  a planning call that writes numbered steps (RunStep kind ``plan``,
                  streamed as REASONING events), then each step worked on with the tool
                  loop (reasoning), then a final answer call (the answer text).
``reflexion``     a draft answer (tool loop, reasoning), a critique of it by the model
                  acting as a critic (RunStep kind ``critique``), then the revised
                  answer (the answer text).

Only the last part of a multi-part strategy is streamed as the answer
(TEXT_MESSAGE_*); earlier parts are REASONING_* events, so the stored answer is always
the final one. A tool call that needs approval stops the strategy: the run pauses.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from chats.runtime import builder, tools
from chats.runtime.builder import RunContext
from chats.runtime.translate import Phase, Translator

MAX_PLAN_STEPS = 5

PLAN_INSTRUCTIONS = (
    "Before answering, make a short plan. Reply ONLY with a numbered list of at most "
    f"{MAX_PLAN_STEPS} concrete steps (one per line, '1. …'), without doing them."
)
STEP_INSTRUCTIONS = (
    "You are working through a plan to answer the user's request. Do only the step you "
    "are given, using tools when they help, and report its result briefly."
)
FINAL_INSTRUCTIONS = "Using the notes below, write the final answer for the user."
CRITIC_PROMPT = (
    "You are a strict reviewer. Judge the draft answer to the user's request: is it "
    "correct, complete, clear and in the requested style? List concrete problems and how "
    "to fix them, or say that it needs no change."
)
REVISE_INSTRUCTIONS = (
    "Here is a draft answer and a review of it. Write the improved final answer for the "
    "user (only the answer, without mentioning the draft or the review)."
)
KNOWLEDGE_HINT = (
    "You can search the knowledge base with the knowledge_search tool. Use it when the "
    "question needs facts you are not sure of, and cite the passages you use."
)

_STEP_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$", re.M)


def parse_plan(text: str) -> list[str]:
    """Numbered (or bulleted) lines of a plan; the whole text as one step if none."""
    steps = [match.group(1) for match in _STEP_LINE.finditer(text or "")]
    if not steps and (text or "").strip():
        steps = [text.strip()]
    return steps[:MAX_PLAN_STEPS]


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part and part.strip())


class Strategy:
    """One agent type. ``run()`` streams; afterwards ``paused_state`` is set (the agent
    state as JSON) when a tool call waits for approval. ``tools_enabled=False`` offers the
    model no tool at all (the review smoke run executes nothing)."""

    uses_tools = True
    retrieves = False

    def __init__(
        self,
        ctx: RunContext,
        chat_model: Any,
        translator: Translator,
        *,
        tools_enabled: bool = True,
    ) -> None:
        self.ctx = ctx
        self.chat_model = chat_model
        self.translator = translator
        self.tools_enabled = tools_enabled
        self.paused_state: str | None = None
        self._toolkit: Any = None

    @property
    def max_iters(self) -> int:
        return int(getattr(settings, "RUN_MAX_ITERS", 10))

    @property
    def system_prompt(self) -> str:
        return self.ctx.system_prompt

    def toolkit(self) -> Any:
        """The run's one Toolkit (built on first use)."""
        if self._toolkit is None:
            specs = tools.tool_specs(
                self.ctx.config, user_id=str(self.ctx.user.pk), with_knowledge=self.retrieves
            )
            self._toolkit = tools.build_toolkit(specs, self.ctx.config)
        return self._toolkit

    def agent(self, *, system_prompt: str | None = None, with_tools: bool = True) -> Any:
        tools_on = with_tools and self.uses_tools and self.tools_enabled
        return builder.make_agent(
            self.chat_model,
            system_prompt=self.system_prompt if system_prompt is None else system_prompt,
            toolkit=self.toolkit() if tools_on else None,
            max_iters=self.max_iters if tools_on else 1,
        )

    async def reply(
        self, agent: Any, inputs: list[Any], *, phase: str, step_kind: str = "model_call"
    ) -> str:
        """Stream one reply of ``agent`` through the translator; returns its text."""
        self.translator.begin(phase, step_kind=step_kind)
        async for event in agent.reply_stream(inputs):
            self.translator.feed(event)
        text = self.translator.end()
        if self.translator.pending_approvals:
            self.paused_state = agent.state.model_dump_json()
        return text

    @property
    def paused(self) -> bool:
        return self.paused_state is not None

    async def run(self) -> None:
        await self.reply(self.agent(), builder.messages(self.ctx), phase=Phase.ANSWER)


class Dialog(Strategy):
    uses_tools = False


class React(Strategy):
    pass


class AgenticRag(Strategy):
    retrieves = True

    @property
    def system_prompt(self) -> str:
        if (self.ctx.config.get("knowledge") or {}).get("knowledge_base_ids"):
            return _join(self.ctx.system_prompt, KNOWLEDGE_HINT)
        return self.ctx.system_prompt


class PlanExecute(Strategy):
    async def run(self) -> None:
        ctx = self.ctx
        plan_text = await self.reply(
            self.agent(system_prompt=_join(ctx.system_prompt, PLAN_INSTRUCTIONS), with_tools=False),
            builder.messages(ctx),
            phase=Phase.REASONING,
            step_kind="plan",
        )
        steps = parse_plan(plan_text)
        notes: list[str] = []
        for number, step in enumerate(steps, start=1):
            request = _join(
                f"Request: {ctx.user_text}",
                "Plan:\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, start=1)),
                "Results so far:\n" + "\n".join(notes) if notes else "",
                f"Now do step {number}: {step}",
            )
            result = await self.reply(
                self.agent(system_prompt=_join(ctx.system_prompt, STEP_INSTRUCTIONS)),
                builder.messages(ctx, user_text=request, with_history=False),
                phase=Phase.REASONING,
            )
            if self.paused:
                return
            notes.append(f"{number}. {step}: {result.strip()}")
        final_request = _join(ctx.user_text, FINAL_INSTRUCTIONS, "Notes:\n" + "\n".join(notes))
        await self.reply(
            self.agent(with_tools=False),
            builder.messages(ctx, user_text=final_request),
            phase=Phase.ANSWER,
        )


class Reflexion(Strategy):
    async def run(self) -> None:
        ctx = self.ctx
        draft = await self.reply(self.agent(), builder.messages(ctx), phase=Phase.REASONING)
        if self.paused:
            return
        critique = await self.reply(
            self.agent(system_prompt=CRITIC_PROMPT, with_tools=False),
            builder.messages(
                ctx,
                user_text=_join(f"Request: {ctx.user_text}", f"Draft answer:\n{draft}"),
                with_history=False,
            ),
            phase=Phase.REASONING,
            step_kind="critique",
        )
        await self.reply(
            self.agent(with_tools=False),
            builder.messages(
                ctx,
                user_text=_join(
                    ctx.user_text,
                    REVISE_INSTRUCTIONS,
                    f"Draft answer:\n{draft}",
                    f"Review:\n{critique}",
                ),
            ),
            phase=Phase.ANSWER,
        )


STRATEGIES: dict[str, type[Strategy]] = {
    "dialog": Dialog,
    "react": React,
    "agentic_rag": AgenticRag,
    "plan_execute": PlanExecute,
    "reflexion": Reflexion,
}


def strategy_for(
    ctx: RunContext, chat_model: Any, translator: Translator, *, tools_enabled: bool = True
) -> Strategy:
    return STRATEGIES.get(ctx.agent_type, React)(
        ctx, chat_model, translator, tools_enabled=tools_enabled
    )
