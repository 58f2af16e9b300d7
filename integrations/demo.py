"""Demo data of the embedded set-up owned by integrations: the offline demo model."""

from __future__ import annotations

from django.db import transaction

from integrations.llm.demo import DEMO_DISPLAY_NAME, DEMO_MODEL_NAME
from integrations.models import LLMModel, ProviderType


def _create_demo_model() -> LLMModel:
    return LLMModel.objects.create(
        display_name=DEMO_DISPLAY_NAME,
        provider_type=ProviderType.DEMO,
        model_name=DEMO_MODEL_NAME,
        max_tokens=None,
        default_temperature=0.0,
        supports_tools=True,
        supports_streaming=True,
    )


@transaction.atomic
def ensure_demo_model() -> LLMModel:
    """The demo model, created if missing; made the default when no model is default.

    Idempotent (``seed_demo`` calls it on every ``make run``): an existing demo model is
    left as the admin configured it, and another default is never taken over.
    """
    model = LLMModel.objects.filter(provider_type=ProviderType.DEMO).order_by("created_at").first()
    if model is None:
        model = _create_demo_model()
    if model.is_active and not LLMModel.objects.filter(is_default=True).exists():
        LLMModel.objects.filter(pk=model.pk).update(is_default=True)
        model.is_default = True
    return model


def demo_model_for_checks() -> LLMModel | None:
    """The model automated checks run agents on (the review smoke run): the oldest active
    demo model, created when there is no demo model at all.

    Unlike :func:`ensure_demo_model` it never makes the model the default: a check must
    not change which model users get. ``None`` when administrators switched every demo
    model off — the checks then skip rather than switch it back on.
    """
    demo_models = LLMModel.objects.filter(provider_type=ProviderType.DEMO).order_by("created_at")
    model = demo_models.filter(is_active=True).first()
    if model is not None or demo_models.exists():
        return model
    return _create_demo_model()
