"""Factories for integrations models (LLM models, access rules, users' provider keys)."""

from __future__ import annotations

import factory

from integrations.models import LLMModel, LLMModelAccess, ProviderType, UserProviderKey


class LLMModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LLMModel

    display_name = factory.Sequence(lambda n: f"Model {n}")
    provider_type = ProviderType.OPENAI
    model_name = "fake-model"
    base_url = ""
    api_key = ""
    extra_config = factory.LazyFunction(dict)


class LLMModelAccessFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LLMModelAccess

    model = factory.SubFactory(LLMModelFactory)
    role = ""
    user = None
    allow = True


class UserProviderKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UserProviderKey

    provider_type = ProviderType.OPENAI
    api_key = "sk-user-own-key-0001"
    base_url = ""
