"""LLM models: validation, the single default, access lists, key resolution, the demo seed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from accounts.models import Role
from integrations.demo import ensure_demo_model
from integrations.llm.base import ProviderError, build_chat_model, resolve_credentials
from integrations.models import LLMModel, ProviderType
from integrations.selectors import default_llm_model, llm_models_for
from integrations.tests.factories import (
    LLMModelAccessFactory,
    LLMModelFactory,
    UserProviderKeyFactory,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("provider_type", ["azure_openai", "custom", "ollama"])
def test_base_url_is_required_for_self_hosted_types(provider_type):
    model = LLMModel(
        display_name="m",
        provider_type=provider_type,
        model_name="m",
        extra_config={"api_version": "2024-06-01"},
    )

    with pytest.raises(ValidationError) as info:
        model.full_clean()

    assert info.value.message_dict["base_url"] == ["A base URL is required for this provider type."]


def test_azure_needs_an_api_version():
    model = LLMModel(
        display_name="m",
        provider_type=ProviderType.AZURE_OPENAI,
        model_name="gpt-4o",
        base_url="https://x.openai.azure.com",
    )

    with pytest.raises(ValidationError) as info:
        model.full_clean()

    assert list(info.value.message_dict) == ["extra_config"]


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "http://u:p@example.com"])
def test_base_url_must_be_a_plain_http_url(url):
    model = LLMModel(
        display_name="m", provider_type=ProviderType.CUSTOM, model_name="m", base_url=url
    )

    with pytest.raises(ValidationError) as info:
        model.full_clean()

    assert list(info.value.message_dict) == ["base_url"]


def test_the_api_key_is_encrypted_at_rest():
    model = LLMModelFactory(api_key="sk-secret-value-123")

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM integrations_llmmodel WHERE id = %s", [model.pk.hex])
        stored = cursor.fetchone()[0]

    assert stored.startswith("enc:v1:")
    assert "sk-secret-value-123" not in stored
    assert LLMModel.objects.get(pk=model.pk).api_key == "sk-secret-value-123"


def test_only_one_model_can_be_default():
    LLMModelFactory(is_default=True)

    with pytest.raises(IntegrityError):
        LLMModelFactory(is_default=True)


def test_estimate_cost_uses_prices_per_1k_tokens():
    model = LLMModelFactory(price_input_per_1k=Decimal("0.5"), price_output_per_1k=Decimal("1.5"))

    assert model.estimate_cost(input_tokens=2000, output_tokens=500) == Decimal("1.750000")


# --- access lists ---------------------------------------------------------------------------


def test_model_without_rules_is_usable_by_everyone(user, other_user):
    model = LLMModelFactory()

    assert list(llm_models_for(user)) == [model]
    assert list(llm_models_for(other_user)) == [model]


def test_inactive_models_are_not_usable(user):
    LLMModelFactory(is_active=False)

    assert list(llm_models_for(user)) == []


def test_user_allow_rule_restricts_the_model_to_that_user(user, other_user):
    model = LLMModelFactory()
    LLMModelAccessFactory(model=model, user=user)

    assert list(llm_models_for(user)) == [model]
    assert list(llm_models_for(other_user)) == []


def test_role_allow_rule_restricts_the_model_to_that_role(user, developer):
    model = LLMModelFactory()
    LLMModelAccessFactory(model=model, role=Role.DEVELOPER)

    assert list(llm_models_for(developer)) == [model]
    assert list(llm_models_for(user)) == []


def test_deny_rule_wins_over_allow_rule(user, other_user):
    model = LLMModelFactory()
    LLMModelAccessFactory(model=model, role=Role.USER)
    LLMModelAccessFactory(model=model, user=other_user, allow=False)

    assert list(llm_models_for(user)) == [model]
    assert list(llm_models_for(other_user)) == []


def test_deny_only_rules_leave_the_model_open_to_others(user, other_user):
    model = LLMModelFactory()
    LLMModelAccessFactory(model=model, user=user, allow=False)

    assert list(llm_models_for(user)) == []
    assert list(llm_models_for(other_user)) == [model]


def test_admins_may_use_every_active_model(admin_user, user):
    model = LLMModelFactory()
    LLMModelAccessFactory(model=model, user=user)

    assert list(llm_models_for(admin_user)) == [model]


def test_anonymous_users_may_use_nothing():
    from django.contrib.auth.models import AnonymousUser

    LLMModelFactory()

    assert list(llm_models_for(AnonymousUser())) == []


def test_listing_usable_models_takes_one_query(user, django_assert_num_queries):
    for _ in range(3):
        LLMModelAccessFactory(model=LLMModelFactory(), role=Role.USER)

    with django_assert_num_queries(1):
        assert len(list(llm_models_for(user))) == 3


def test_default_llm_model_is_the_active_default():
    LLMModelFactory()
    default = LLMModelFactory(is_default=True)

    assert default_llm_model() == default


# --- key resolution -------------------------------------------------------------------------


def test_key_resolution_prefers_the_users_own_key(user, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    model = LLMModelFactory(api_key="sk-model")
    UserProviderKeyFactory(user=user, api_key="sk-user", base_url="https://proxy.example.com/v1")

    creds = resolve_credentials(model, user=user)

    assert (creds.api_key, creds.source, creds.base_url) == (
        "sk-user",
        "user",
        "https://proxy.example.com/v1",
    )


def test_key_resolution_falls_back_to_the_models_key(user, other_user, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    model = LLMModelFactory(api_key="sk-model")
    UserProviderKeyFactory(user=other_user, api_key="sk-bobs-own")

    creds = resolve_credentials(model, user=user)

    assert (creds.api_key, creds.source) == ("sk-model", "model")


@pytest.mark.parametrize(
    ("provider_type", "env_var"),
    [
        ("openai", "OPENAI_API_KEY"),
        ("anthropic", "ANTHROPIC_API_KEY"),
        ("dashscope", "DASHSCOPE_API_KEY"),
        ("azure_openai", "AZURE_OPENAI_API_KEY"),
    ],
)
def test_key_resolution_falls_back_to_the_environment(user, monkeypatch, provider_type, env_var):
    monkeypatch.setenv(env_var, "sk-from-env")
    model = LLMModelFactory(provider_type=provider_type, api_key="")

    creds = resolve_credentials(model, user=user)

    assert (creds.api_key, creds.source) == ("sk-from-env", "env")


def test_a_custom_endpoint_never_gets_the_platforms_openai_key(user, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform")
    model = LLMModelFactory(provider_type=ProviderType.CUSTOM, base_url="https://x.example.com")

    assert resolve_credentials(model, user=user).api_key is None


def test_a_key_for_another_provider_type_is_not_used(user, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = LLMModelFactory(api_key="")
    UserProviderKeyFactory(user=user, provider_type=ProviderType.ANTHROPIC, api_key="sk-ant")

    assert resolve_credentials(model, user=user).api_key is None


def test_building_a_model_without_any_key_is_a_clear_error(user, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = LLMModelFactory(display_name="GPT", api_key="")

    with pytest.raises(ProviderError) as info:
        build_chat_model(model, user=user)

    assert (info.value.code, info.value.transient, str(info.value)) == (
        "missing_key",
        False,
        "No API key is configured for GPT.",
    )


def test_building_an_inactive_model_is_a_clear_error(user):
    model = LLMModelFactory(display_name="Old", api_key="sk-x", is_active=False)

    with pytest.raises(ProviderError) as info:
        build_chat_model(model, user=user)

    assert (info.value.code, str(info.value)) == ("model_inactive", "The model Old is not active.")


# --- the demo seed ----------------------------------------------------------------------------


def test_ensure_demo_model_seeds_the_default_demo_model():
    model = ensure_demo_model()

    assert (model.display_name, model.provider_type, model.is_default, model.has_api_key) == (
        "Demo model (offline)",
        "demo",
        True,
        False,
    )


def test_ensure_demo_model_is_idempotent():
    first = ensure_demo_model()
    second = ensure_demo_model()

    assert first.pk == second.pk
    assert LLMModel.objects.count() == 1


def test_ensure_demo_model_does_not_take_over_another_default():
    other = LLMModelFactory(is_default=True)

    demo = ensure_demo_model()

    assert (demo.is_default, default_llm_model()) == (False, other)
