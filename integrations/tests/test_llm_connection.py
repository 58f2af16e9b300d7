"""The connection test: each provider type's own request and headers, readable errors."""

from __future__ import annotations

import logging

import pytest

from accounts.models import AuditLog
from integrations.services import llm_model_test
from integrations.tests.factories import LLMModelFactory

pytestmark = pytest.mark.django_db

KEY = "sk-test-connection-key-77"


def _test_url(client, model):
    return client.post(f"/api/v1/llm-models/{model.pk}/test")


@pytest.fixture
def admin_client(admin_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def test_openai_test_lists_models_with_a_bearer_key(fake_llm, admin_user):
    model = LLMModelFactory(
        provider_type="openai", base_url=fake_llm.base_url, api_key=KEY, model_name="fake-model"
    )

    result = llm_model_test(admin_user, model=model)

    request = fake_llm.requests[0]
    assert (request.method, request.path, request.headers["authorization"]) == (
        "GET",
        "/v1/models",
        f"Bearer {KEY}",
    )
    assert result["success"] is True
    assert result["detail"] == "2 models available, including fake-model."
    assert result["error"] is None
    assert result["latency_ms"] >= 0


def test_custom_test_lists_models_at_its_base_url(fake_llm, admin_user):
    model = LLMModelFactory(
        provider_type="custom", base_url=f"{fake_llm.url}/gateway/v1", api_key=KEY
    )

    result = llm_model_test(admin_user, model=model)

    request = fake_llm.requests[0]
    assert (request.path, request.headers["authorization"], result["success"]) == (
        "/gateway/v1/models",
        f"Bearer {KEY}",
        True,
    )


def test_azure_test_sends_api_key_header_and_api_version(fake_llm, admin_user):
    model = LLMModelFactory(
        provider_type="azure_openai",
        base_url=fake_llm.url,
        api_key=KEY,
        extra_config={"api_version": "2024-06-01"},
    )

    result = llm_model_test(admin_user, model=model)

    request = fake_llm.requests[0]
    assert (request.method, request.path, request.query) == (
        "GET",
        "/openai/models",
        {"api-version": "2024-06-01"},
    )
    assert request.headers["api-key"] == KEY
    assert "authorization" not in request.headers
    assert result["success"] is True


def test_anthropic_test_posts_a_message_with_x_api_key(fake_llm, admin_user):
    model = LLMModelFactory(
        provider_type="anthropic", base_url=fake_llm.url, api_key=KEY, model_name="claude-x"
    )

    result = llm_model_test(admin_user, model=model)

    request = fake_llm.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert (request.headers["x-api-key"], request.headers["anthropic-version"]) == (
        KEY,
        "2023-06-01",
    )
    assert request.body == {
        "model": "claude-x",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "ping"}],
    }
    assert result["success"] is True


def test_dashscope_test_posts_to_the_native_generation_endpoint(fake_llm, admin_user):
    model = LLMModelFactory(
        provider_type="dashscope",
        base_url=f"{fake_llm.url}/compatible-mode/v1",
        api_key=KEY,
        model_name="qwen-max",
    )

    result = llm_model_test(admin_user, model=model)

    request = fake_llm.requests[0]
    assert (request.method, request.path) == (
        "POST",
        "/api/v1/services/aigc/text-generation/generation",
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["input"] == {"messages": [{"role": "user", "content": "ping"}]}
    assert result["success"] is True


def test_ollama_test_lists_tags_without_a_key(fake_llm, admin_user):
    model = LLMModelFactory(provider_type="ollama", base_url=fake_llm.url, model_name="fake-model")

    result = llm_model_test(admin_user, model=model)

    request = fake_llm.requests[0]
    assert (request.method, request.path, "authorization" in request.headers) == (
        "GET",
        "/api/tags",
        False,
    )
    assert result["detail"] == "2 models available, including fake-model."


def test_demo_test_succeeds_offline(fake_llm, admin_user):
    model = LLMModelFactory(provider_type="demo", model_name="demo")

    result = llm_model_test(admin_user, model=model)

    assert (result["success"], result["latency_ms"], fake_llm.requests) == (True, 0, [])


def test_wrong_key_gives_a_readable_error_without_the_key(fake_llm, admin_user, caplog):
    caplog.set_level(logging.DEBUG)
    fake_llm.expected_key = "sk-the-right-one"
    model = LLMModelFactory(provider_type="openai", base_url=fake_llm.base_url, api_key=KEY)

    result = llm_model_test(admin_user, model=model)

    # The fake echoes the key it got in its error body, like a careless provider.
    assert result["success"] is False
    assert result["status"] == 401
    assert result["error"] == "HTTP 401 from provider: invalid API key"
    assert result["detail"] == "Incorrect API key provided: ***."
    assert KEY not in str(result)
    assert KEY not in caplog.text


def test_missing_key_is_reported_without_a_request(fake_llm, admin_user, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = LLMModelFactory(provider_type="openai", base_url=fake_llm.base_url, api_key="")

    result = llm_model_test(admin_user, model=model)

    assert result["success"] is False
    assert result["error"] == (
        "No API key: set one on the model or in the provider's environment variable."
    )
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    ("base_url", "error"),
    [
        (
            "http://169.254.169.254/v1",
            "The provider URL is not allowed: Address 169.254.169.254 is not allowed (link-local).",
        ),
        (
            "http://localhost:11434/v1",
            "The provider URL is not allowed: Address 127.0.0.1 (resolved from localhost) is "
            "not allowed (loopback).",
        ),
    ],
)
def test_blocked_base_url_is_a_readable_error(admin_user, settings, base_url, error):
    settings.OUTBOUND_ALLOWLIST = []
    model = LLMModelFactory(provider_type="custom", base_url=base_url, api_key=KEY)

    result = llm_model_test(admin_user, model=model)

    assert (result["success"], result["error"]) == (False, error)


def test_localhost_is_reachable_once_allowlisted(fake_llm, admin_user, settings):
    settings.OUTBOUND_ALLOWLIST = ["localhost"]
    model = LLMModelFactory(
        provider_type="ollama", base_url=f"http://localhost:{fake_llm.port}", model_name="x"
    )

    result = llm_model_test(admin_user, model=model)

    assert result["success"] is True


def test_server_error_is_readable(fake_llm, admin_user):
    model = LLMModelFactory(provider_type="anthropic", base_url=fake_llm.url, api_key=KEY)
    fake_llm.fail_next(1, status=503)

    result = llm_model_test(admin_user, model=model)

    assert (result["success"], result["status"], result["error"]) == (
        False,
        503,
        "HTTP 503 from provider: the provider had an internal error",
    )


def test_api_tests_unsaved_params(fake_llm, admin_client):
    response = admin_client.post(
        "/api/v1/llm-models/test",
        {
            "provider_type": "custom",
            "base_url": fake_llm.base_url,
            "api_key": KEY,
            "model_name": "fake-model",
        },
        format="json",
    )

    data = response.json()["data"]
    assert (response.status_code, data["success"], data["status"]) == (200, True, 200)
    assert fake_llm.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in response.content.decode()


def test_api_tests_a_saved_model_and_audits_it(fake_llm, admin_client):
    model = LLMModelFactory(provider_type="openai", base_url=fake_llm.base_url, api_key=KEY)

    response = _test_url(admin_client, model)

    assert response.json()["data"]["success"] is True
    assert AuditLog.objects.filter(action="llm_model.test", object_id=str(model.pk)).count() == 1


def test_api_test_validates_unsaved_params(admin_client):
    response = admin_client.post(
        "/api/v1/llm-models/test",
        {"provider_type": "custom", "model_name": "m"},
        format="json",
    )

    assert (response.status_code, list(response.json()["details"])) == (400, ["base_url"])


@pytest.mark.parametrize("path", ["/api/v1/llm-models/test", "/api/v1/llm-models/{id}/test"])
def test_non_admins_cannot_run_connection_tests(auth_client, fake_llm, path):
    model = LLMModelFactory(provider_type="openai", base_url=fake_llm.base_url, api_key=KEY)

    response = auth_client.post(
        path.format(id=model.pk),
        {"provider_type": "openai", "model_name": "m", "base_url": fake_llm.base_url},
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (403, 40301)
    assert fake_llm.requests == []
