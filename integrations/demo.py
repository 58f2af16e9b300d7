"""Demo data of the embedded set-up owned by integrations: the offline demo model."""

from __future__ import annotations

from django.db import transaction

from integrations.llm.demo import DEMO_DISPLAY_NAME, DEMO_MODEL_NAME
from integrations.models import LLMModel, ProviderType


@transaction.atomic
def ensure_demo_model() -> LLMModel:
    """The demo model, created if missing; made the default when no model is default.

    Idempotent (``seed_demo`` calls it on every ``make run``): an existing demo model is
    left as the admin configured it, and another default is never taken over.
    """
    model = LLMModel.objects.filter(provider_type=ProviderType.DEMO).order_by("created_at").first()
    if model is None:
        model = LLMModel.objects.create(
            display_name=DEMO_DISPLAY_NAME,
            provider_type=ProviderType.DEMO,
            model_name=DEMO_MODEL_NAME,
            max_tokens=None,
            default_temperature=0.0,
            supports_tools=True,
            supports_streaming=True,
        )
    if model.is_active and not LLMModel.objects.filter(is_default=True).exists():
        LLMModel.objects.filter(pk=model.pk).update(is_default=True)
        model.is_default = True
    return model
