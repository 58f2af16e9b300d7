"""The review smoke run: a submitted version answers once on the offline demo model
(``agents.checks_review.check_smoke_run`` with the runner ``chats.runtime.smoke``
registers) — never on its own model — and nothing of it is stored as a run."""

from __future__ import annotations

import pytest

from agents import checks_review, services
from agents.config import default_config
from agents.models import AgentVersion
from agents.tests.factories import AgentVersionFactory
from chats.models import Chat, ChatMessage, Run, RunEvent, RunStep
from chats.runtime import strategies
from chats.tests.runtime_helpers import demo_model, fake_model
from integrations.models import LLMModel, ProviderType

pytestmark = pytest.mark.django_db

DEMO_OPENING = "I am the offline demo model"


def _submit(developer, capture, config) -> AgentVersion:
    agent = services.agent_create(developer, data={"name": "Trip Planner"})
    version = services.agent_version_create(
        developer, agent=agent, version="1.0.0", changelog="First.", config=config
    )
    with capture(execute=True):
        services.agent_version_submit(developer, version=version)
    return AgentVersion.objects.get(pk=version.pk)


def _smoke(version: AgentVersion) -> dict:
    result = version.check_results[-1]
    assert result["name"] == "smoke_run"
    return result


def _config(agent_type: str, llm: LLMModel | None = None, **values) -> dict:
    config = default_config(agent_type)
    config["model"]["llm_model_id"] = str(llm.pk) if llm is not None else None
    config.update(values)
    return config


def _version(config, **fields) -> AgentVersion:
    """A submitted version whose checks have not run, loaded as the review task loads it."""
    version = AgentVersionFactory(
        config=config,
        status=AgentVersion.Status.SUBMITTED,
        check_status=AgentVersion.CheckStatus.PENDING,
        **fields,
    )
    return AgentVersion.objects.select_related("agent__developer").get(pk=version.pk)


def test_a_dialog_agent_passes_on_the_demo_model_and_its_own_model_is_never_called(
    developer, fake_llm, django_capture_on_commit_callbacks
):
    own_model = fake_model(fake_llm)
    config = _config(
        "dialog", own_model, system_prompt="You are {{ agent_name }}, a travel planner."
    )

    version = _submit(developer, django_capture_on_commit_callbacks, config)

    smoke = _smoke(version)
    details = smoke["details"]
    assert version.check_status == AgentVersion.CheckStatus.PASSED
    assert smoke["status"] == "pass"
    assert smoke["message"] == (
        f"The agent answered on the demo model in {details['duration_ms']} ms."
    )
    assert details["model"] == "Demo model (offline)"
    assert details["prompt"] == checks_review.SMOKE_PROMPT
    assert details["answer_excerpt"].startswith(DEMO_OPENING)
    assert f"You said: “{checks_review.SMOKE_PROMPT}”" in details["answer_excerpt"]
    # A step, the text message (start, one delta per word, end): more than four events.
    assert details["event_count"] > 4
    assert details["tools"] == "Not offered to the model: a smoke run executes no tool (-)."
    assert fake_llm.chat_requests == []


def test_the_smoke_run_writes_no_run_chat_or_event(developer, django_capture_on_commit_callbacks):
    version = _submit(developer, django_capture_on_commit_callbacks, _config("react"))

    assert _smoke(version)["status"] == "pass"
    assert Run.objects.count() == 0
    assert RunStep.objects.count() == 0
    assert RunEvent.objects.count() == 0
    assert Chat.objects.count() == 0
    assert ChatMessage.objects.count() == 0


@pytest.mark.parametrize("agent_type", ["react", "agentic_rag", "plan_execute", "reflexion"])
def test_every_agent_type_answers_in_the_smoke_run(agent_type):
    demo_model()

    result = checks_review.check_smoke_run(_version(_config(agent_type)))

    assert result["status"] == "pass"
    assert result["details"]["answer_excerpt"] != ""


def test_tools_are_not_offered_so_none_can_run(developer, django_capture_on_commit_callbacks):
    config = _config("react", builtin_tools=["current_time"], tool_approval={"current_time": "ask"})

    version = _submit(developer, django_capture_on_commit_callbacks, config)

    details = _smoke(version)["details"]
    assert _smoke(version)["status"] == "pass"
    assert details["tools"] == (
        "Not offered to the model: a smoke run executes no tool (current_time)."
    )
    # Offered tools, the demo model lists them ("Name one of my tools …"); it saw none.
    assert "current_time" not in details["answer_excerpt"]
    assert details["answer_excerpt"].endswith(
        "Connect a real model in the admin to get real answers."
    )


def test_a_configuration_the_runtime_refuses_fails_the_check_with_the_run_error(reviewer):
    demo_model()
    version = _version(["not", "an", "object"])

    services.review_run_checks(version_id=str(version.pk))

    version.refresh_from_db()
    smoke = _smoke(version)
    assert version.check_status == AgentVersion.CheckStatus.FAILED
    assert smoke["status"] == "fail"
    assert smoke["message"] == (
        "The run failed on the demo model (invalid_config): The agent's configuration is not valid."
    )
    assert smoke["details"]["code"] == "invalid_config"
    assert smoke["details"]["error"] == "The agent's configuration is not valid."


def test_a_runtime_crash_fails_the_check_as_an_internal_error(monkeypatch, caplog):
    demo_model()

    async def explode(self):
        raise KeyError("boom")

    monkeypatch.setattr(strategies.Dialog, "run", explode)

    result = checks_review.check_smoke_run(_version(_config("dialog")))

    assert result["status"] == "fail"
    assert result["message"] == (
        "The run failed on the demo model (internal_error): The agent failed unexpectedly. "
        "Try again."
    )
    assert result["details"]["answer_excerpt"] == ""
    assert "KeyError: 'boom'" in caplog.text


def test_a_run_that_takes_too_long_is_a_warning_with_what_was_written(settings):
    settings.REVIEW_SMOKE_RUN_TIMEOUT = 0.3
    demo_model(extra_config={"token_delay_ms": 100})

    result = checks_review.check_smoke_run(_version(_config("dialog")))

    assert result["status"] == "warn"
    assert result["message"] == (
        "The agent did not finish answering within 0.3 s on the demo model."
    )
    # At 100 ms a word, the first words at most (the whole answer has some fifty).
    assert DEMO_OPENING.startswith(result["details"]["answer_excerpt"])
    assert result["details"]["duration_ms"] < 3000


def test_a_missing_demo_model_is_created_but_never_made_the_default(fake_llm):
    default = fake_model(fake_llm, is_default=True)

    result = checks_review.check_smoke_run(_version(_config("dialog")))

    demo = LLMModel.objects.get(provider_type=ProviderType.DEMO)
    assert result["status"] == "pass"
    assert (demo.is_active, demo.is_default) == (True, False)
    assert LLMModel.objects.get(is_default=True) == default
    assert fake_llm.chat_requests == []


def test_a_switched_off_demo_model_skips_the_check_and_stays_off():
    demo_model(is_active=False)

    result = checks_review.check_smoke_run(_version(_config("dialog")))

    assert result == {
        "name": "smoke_run",
        "status": "skipped",
        "message": "Skipped: the demo model is switched off; checks never call the agent's model.",
    }
    assert list(LLMModel.objects.values_list("provider_type", "is_active")) == [("demo", False)]


def test_without_a_registered_runtime_the_check_is_skipped(monkeypatch):
    monkeypatch.setattr(checks_review, "_smoke_runner", None)

    result = checks_review.check_smoke_run(_version(_config("dialog")))

    assert result == {
        "name": "smoke_run",
        "status": "skipped",
        "message": "Skipped: no agent runtime is registered to run the agent.",
    }
    assert not LLMModel.objects.exists()
