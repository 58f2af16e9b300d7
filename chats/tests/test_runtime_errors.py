"""Bad configuration and bad providers end the run with a RUN_ERROR that has a code and a
readable message — and no secret anywhere (events, run, message, logs)."""

from __future__ import annotations

import logging
import uuid

import pytest

from chats.models import ChatMessage, Run
from chats.runtime.execute import Outcome, run_execute
from chats.tests.runtime_helpers import agent_version, chat_run, fake_model, stored, types
from integrations.models import ProviderType
from integrations.tests.factories import LLMModelFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-test-SECRET-value-0123456789"


def run_error(run: Run) -> dict:
    payloads = stored(run)
    assert [p["type"] for p in payloads].count("RUN_ERROR") == 1
    assert "RUN_FINISHED" not in types(run)
    return payloads[-1]


def test_unknown_model_is_a_run_error(user):
    version = agent_version(None)
    config = dict(version.config)
    config["model"] = {**config["model"], "llm_model_id": str(uuid.uuid4())}
    version.config = config
    version.save(update_fields=["config"])
    run = chat_run(user, version, "Hi")

    assert run_execute(str(run.pk)) == Outcome.FAILED

    error = run_error(run)
    assert error["code"] == "model_not_found"
    assert error["message"] == "The model this agent is configured with no longer exists."
    assert types(run) == ["RUN_STARTED", "RUN_ERROR"]
    run.refresh_from_db()
    assert run.error_code == "model_not_found"
    assert ChatMessage.objects.get(pk=run.assistant_message_id).status == "failed"


def test_inactive_model_is_a_run_error(user, fake_llm):
    version = agent_version(fake_model(fake_llm, is_active=False, display_name="Old GPT"))
    run = chat_run(user, version, "Hi")

    run_execute(str(run.pk))

    error = run_error(run)
    assert error["code"] == "model_inactive"
    assert error["message"] == "The model Old GPT is not active."
    assert fake_llm.chat_requests == []


def test_no_model_and_no_default_is_a_run_error(user):
    version = agent_version(None)
    run = chat_run(user, version, "Hi")

    run_execute(str(run.pk))

    assert run_error(run)["code"] == "no_model"


def test_the_platform_default_model_is_used_when_the_version_names_none(user, fake_llm):
    fake_model(fake_llm, is_default=True)
    version = agent_version(None, agent_type="dialog")
    run = chat_run(user, version, "Hi")

    assert run_execute(str(run.pk)) == Outcome.COMPLETED

    assert len(fake_llm.chat_requests) == 1


def test_missing_key_is_a_run_error(user, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = LLMModelFactory(provider_type=ProviderType.OPENAI, api_key="", display_name="GPT")
    version = agent_version(llm)
    run = chat_run(user, version, "Hi")

    run_execute(str(run.pk))

    error = run_error(run)
    assert error["code"] == "missing_key"
    assert error["message"] == "No API key is configured for GPT."


@pytest.mark.parametrize(
    "base_url",
    ["http://169.254.169.254/v1", "http://localhost:9/v1", "http://10.0.0.7:8000/v1"],
)
def test_a_base_url_pointing_inside_is_refused(user, base_url, settings):
    settings.LLM_MAX_RETRIES = 0
    llm = LLMModelFactory(provider_type=ProviderType.CUSTOM, base_url=base_url, api_key=SECRET)
    version = agent_version(llm)
    run = chat_run(user, version, "Hi")

    assert run_execute(str(run.pk)) == Outcome.FAILED

    error = run_error(run)
    assert error["code"] == "blocked_url"
    assert error["message"].startswith("The provider URL is not allowed")
    assert SECRET not in str(stored(run))


def test_a_provider_that_echoes_the_key_never_leaks_it(user, fake_llm, caplog):
    caplog.set_level(logging.DEBUG)
    fake_llm.expected_key = "the-right-key"
    version = agent_version(fake_model(fake_llm, api_key=SECRET))
    run = chat_run(user, version, "Hi")

    run_execute(str(run.pk))

    # The fake server did receive the key and echoed it in its error body.
    assert fake_llm.chat_requests[0].bearer == SECRET
    error = run_error(run)
    assert error["code"] == "auth_failed"
    run.refresh_from_db()
    message = ChatMessage.objects.get(pk=run.assistant_message_id)
    assert SECRET not in str(stored(run))
    assert SECRET not in run.error_message
    assert SECRET not in str(message.metadata)
    assert SECRET not in caplog.text


def test_an_invalid_configuration_snapshot_is_a_run_error(user, fake_llm):
    version = agent_version(fake_model(fake_llm))
    version.config = ["not", "an", "object"]
    version.save(update_fields=["config"])
    run = chat_run(user, version, "Hi")

    run_execute(str(run.pk))

    assert run_error(run)["code"] == "invalid_config"


def test_an_unexpected_failure_still_ends_with_one_run_error(user, fake_llm, monkeypatch):
    from chats.runtime import strategies

    async def explode(self):
        raise KeyError("boom")

    monkeypatch.setattr(strategies.Dialog, "run", explode)
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    run = chat_run(user, version, "Hi")

    assert run_execute(str(run.pk)) == Outcome.FAILED

    error = run_error(run)
    assert error == {
        "type": "RUN_ERROR",
        "timestamp": error["timestamp"],
        "message": "The agent failed unexpectedly. Try again.",
        "code": "internal_error",
        "usage": error["usage"],
    }
