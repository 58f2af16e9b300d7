"""Integration reads, scoped to the acting user (STYLE §2)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import Role, User
from agentstore.errors import NotFound
from integrations.models import LLMModel, LLMModelAccess, UserProviderKey


def _as_uuid(value: Any) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise NotFound() from exc


def is_llm_admin(user: User | None) -> bool:
    """May manage LLM models (and use every active model regardless of access rules)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or user.role == Role.ADMIN


# --- LLM models ------------------------------------------------------------------------------


def llm_models_for(user: User | None) -> QuerySet[LLMModel]:
    """The active models ``user`` may use (SPEC §6.1).

    A model without allow rules is open to every signed-in user; with allow rules only
    matching roles/users may use it; a matching deny rule always wins. Admins may use
    every active model. Anonymous users get nothing.
    """
    models = LLMModel.objects.filter(is_active=True).order_by("-is_default", "display_name", "id")
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return models.none()
    if is_llm_admin(user):
        return models
    matches = Q(role=user.role) | Q(user=user)
    rules = LLMModelAccess.objects.filter(model=OuterRef("pk"))
    denied = rules.filter(matches, allow=False)
    allow_rules = rules.filter(allow=True)
    allowed = allow_rules.filter(matches)
    return models.filter(~Exists(denied)).filter(~Exists(allow_rules) | Exists(allowed))


def llm_model_get_for(user: User | None, *, model_id: Any) -> LLMModel:
    """One model ``user`` may use; an unknown, inactive or forbidden model is not found."""
    model = llm_models_for(user).filter(pk=_as_uuid(model_id)).first()
    if model is None:
        raise NotFound()
    return model


def default_llm_model() -> LLMModel | None:
    """The active model marked default (the demo model on a fresh embedded set-up)."""
    return LLMModel.objects.filter(is_active=True, is_default=True).first()


def llm_models_for_admin(actor: User) -> QuerySet[LLMModel]:
    """Every model, active or not, with access rules, for an admin; nothing for others."""
    if not is_llm_admin(actor):
        return LLMModel.objects.none()
    return LLMModel.objects.prefetch_related("access_rules").order_by(
        "-is_default", "display_name", "id"
    )


def llm_model_get_for_admin(actor: User, *, model_id: Any) -> LLMModel:
    model = llm_models_for_admin(actor).filter(pk=_as_uuid(model_id)).first()
    if model is None:
        raise NotFound()
    return model


# --- users' own provider keys ------------------------------------------------------------------


def provider_keys_for(user: User) -> QuerySet[UserProviderKey]:
    return UserProviderKey.objects.filter(user=user).order_by("provider_type")


def provider_key_get(user: User, *, provider_type: str) -> UserProviderKey:
    key = provider_keys_for(user).filter(provider_type=provider_type).first()
    if key is None:
        raise NotFound()
    return key
