"""Shared set-up for the runtime tests: models pointed at the fake server or the demo
model, agents with a given configuration, chat runs with a conversation behind them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agents.config import default_config
from agents.models import AgentVersion
from agents.tests.factories import AgentVersionFactory, published_agent
from chats.models import Chat, ChatMessage, Run, RunEvent, RunStep
from integrations.models import LLMModel, ProviderType
from integrations.tests.factories import LLMModelFactory

TERMINAL_TYPES = {"RUN_FINISHED", "RUN_ERROR"}


def fake_model(fake_llm: Any, **fields: Any) -> LLMModel:
    """A ``custom`` (OpenAI-compatible) model on the fake server, priced for cost tests."""
    values = {
        "display_name": "Fake GPT",
        "provider_type": ProviderType.CUSTOM,
        "base_url": fake_llm.base_url,
        "model_name": "fake-model",
        "price_input_per_1k": Decimal("1.0"),
        "price_output_per_1k": Decimal("2.0"),
        **fields,
    }
    return LLMModelFactory(**values)


def demo_model(**fields: Any) -> LLMModel:
    values = {
        "display_name": "Demo model (offline)",
        "provider_type": ProviderType.DEMO,
        "model_name": "demo",
        **fields,
    }
    return LLMModelFactory(**values)


def agent_version(llm: LLMModel | None, *, developer: Any = None, **config: Any) -> AgentVersion:
    """The current version of a published agent with ``config`` over the defaults."""
    settings_ = default_config(config.pop("agent_type", "react"))
    settings_["model"]["llm_model_id"] = str(llm.pk) if llm is not None else None
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(settings_.get(key), dict):
            settings_[key].update(value)
        else:
            settings_[key] = value
    kwargs = {"developer": developer} if developer is not None else {}
    agent = published_agent(**kwargs)
    version = agent.current_version
    version.config = settings_
    version.save(update_fields=["config"])
    return version


def draft_version(agent: Any, llm: LLMModel | None) -> AgentVersion:
    config = default_config("react")
    config["model"]["llm_model_id"] = str(llm.pk) if llm is not None else None
    return AgentVersionFactory(agent=agent, config=config, version="9.9.9")


def chat_run(
    user: Any, version: AgentVersion, text: str, *, history: list[tuple[str, str]] = ()
) -> Run:
    """A chat with ``history`` (alternating turns), the user's message, the run and its
    empty assistant message — what the chat service stores before dispatching."""
    chat = Chat.objects.create(user=user, agent=version.agent, agent_version=version)
    parent = None
    for role, content in history:
        parent = ChatMessage.objects.create(
            chat=chat, parent=parent, role=role, content=content, agent_version=version
        )
    user_message = ChatMessage.objects.create(chat=chat, parent=parent, role="user", content=text)
    assistant = ChatMessage.objects.create(
        chat=chat,
        parent=user_message,
        role="assistant",
        content="",
        status=ChatMessage.Status.SENDING,
        agent_version=version,
    )
    run = Run.objects.create(
        user=user,
        agent=version.agent,
        agent_version=version,
        chat=chat,
        user_message=user_message,
        assistant_message=assistant,
        source=Run.Source.CHAT,
        input={"text": text, "context": {}},
    )
    assistant.run = run
    assistant.save(update_fields=["run"])
    return run


def oneoff_run(user: Any, version: AgentVersion, text: str, **fields: Any) -> Run:
    return Run.objects.create(
        user=user,
        agent=version.agent,
        agent_version=version,
        source=Run.Source.ONEOFF,
        input={"text": text, "context": fields.pop("context", {})},
        **fields,
    )


def stored(run: Run) -> list[dict[str, Any]]:
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("payload", flat=True))


def types(run: Run) -> list[str]:
    return [payload["type"] for payload in stored(run)]


def collapsed_types(run: Run) -> list[str]:
    """Event types with runs of the same delta type merged (batching varies with timing)."""
    result: list[str] = []
    for kind in types(run):
        if result and result[-1] == kind and kind.endswith(("_CONTENT", "_ARGS")):
            continue
        result.append(kind)
    return result


def text_of(run: Run) -> str:
    return "".join(p.get("delta", "") for p in stored(run) if p["type"] == "TEXT_MESSAGE_CONTENT")


def steps(run: Run) -> list[tuple[str, str, str]]:
    return list(
        RunStep.objects.filter(run=run).order_by("index").values_list("kind", "name", "status")
    )
