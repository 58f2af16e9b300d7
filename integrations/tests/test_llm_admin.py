"""The LLM admin pages: write-only key, test-connection button, audited writes."""

from __future__ import annotations

import pytest

from accounts.models import AuditLog
from integrations.models import LLMModel
from integrations.tests.factories import LLMModelFactory, UserProviderKeyFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-admin-page-secret-5150"


@pytest.fixture
def admin_web(client, admin_user):
    client.force_login(admin_user)
    return client


def _form(**overrides):
    data = {
        "display_name": "Admin GPT",
        "provider_type": "openai",
        "model_name": "fake-model",
        "is_active": "on",
        "base_url": "",
        "api_key": "",
        "extra_config": "{}",
        "max_tokens": "",
        "default_temperature": "0.7",
        "rate_limit_rpm": "",
        "price_input_per_1k": "0",
        "price_output_per_1k": "0",
        "supports_tools": "on",
        "supports_streaming": "on",
        "access_rules-TOTAL_FORMS": "0",
        "access_rules-INITIAL_FORMS": "0",
        "access_rules-MIN_NUM_FORMS": "0",
        "access_rules-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_admin_adds_a_model_through_the_audited_service(admin_web):
    response = admin_web.post(
        "/admin/integrations/llmmodel/add/", _form(api_key=SECRET), follow=True
    )

    model = LLMModel.objects.get()
    assert response.status_code == 200
    assert model.api_key == SECRET
    assert AuditLog.objects.filter(action="llm_model.create", object_id=str(model.pk)).exists()


def test_change_page_never_shows_the_key(admin_web):
    model = LLMModelFactory(api_key=SECRET)

    page = admin_web.get(f"/admin/integrations/llmmodel/{model.pk}/change/").content.decode()

    assert SECRET not in page
    assert "Save and test connection" in page


def test_blank_key_input_keeps_the_stored_key(admin_web):
    model = LLMModelFactory(api_key=SECRET, display_name="Before")

    admin_web.post(f"/admin/integrations/llmmodel/{model.pk}/change/", _form(display_name="After"))

    model.refresh_from_db()
    assert (model.display_name, model.api_key) == ("After", SECRET)


def test_save_and_test_connection_reports_success_and_latency(admin_web, fake_llm):
    model = LLMModelFactory(api_key=SECRET, base_url=fake_llm.base_url)

    response = admin_web.post(
        f"/admin/integrations/llmmodel/{model.pk}/change/",
        _form(base_url=fake_llm.base_url, _test_connection="1"),
        follow=True,
    )

    messages = [str(m) for m in response.context["messages"]]
    assert response.redirect_chain[-1][0] == f"/admin/integrations/llmmodel/{model.pk}/change/"
    assert any("connection OK in" in m for m in messages)
    assert fake_llm.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_test_connection_action_shows_the_readable_error(admin_web, fake_llm):
    fake_llm.expected_key = "sk-other"
    model = LLMModelFactory(display_name="Bad key", api_key=SECRET, base_url=fake_llm.base_url)

    response = admin_web.post(
        "/admin/integrations/llmmodel/",
        {"action": "test_connection", "_selected_action": [str(model.pk)]},
        follow=True,
    )

    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Bad key: connection failed: HTTP 401 from provider: invalid API key"]
    assert SECRET not in response.content.decode()


def test_deleting_the_default_model_is_refused_in_the_admin(admin_web):
    model = LLMModelFactory(is_default=True)

    response = admin_web.post(f"/admin/integrations/llmmodel/{model.pk}/delete/", {"post": "yes"})

    assert response.status_code == 200
    assert "make another model the default first" in response.content.decode()
    assert LLMModel.objects.count() == 1


def test_user_provider_keys_are_listed_without_the_key(admin_web, user):
    key = UserProviderKeyFactory(user=user, api_key=SECRET)

    listing = admin_web.get("/admin/integrations/userproviderkey/").content.decode()
    detail = admin_web.get(f"/admin/integrations/userproviderkey/{key.pk}/change/").content.decode()

    assert "Alice" in listing
    assert SECRET not in listing
    assert SECRET not in detail


def test_reviewers_cannot_open_the_llm_admin(client, reviewer):
    client.force_login(reviewer)

    response = client.get("/admin/integrations/llmmodel/")

    assert response.status_code == 403
