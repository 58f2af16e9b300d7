"""Integration writes with rules and side effects (STYLE §2); each one is audited.

LLM models (admin only), users' own provider keys, and the provider connection test.
Secrets never appear in audit details, errors or return values: only ``has_api_key``.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import httpx
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import Role, User
from agentstore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from integrations.llm.base import (
    ProviderError,
    get_provider,
    provider_config_for,
    scrub,
    status_error,
)
from integrations.llm.resilience import to_provider_error
from integrations.models import LLMModel, LLMModelAccess, ProviderType, UserProviderKey
from integrations.models.llm import validate_base_url
from integrations.outbound import OutboundBlocked, outbound_client
from integrations.selectors import is_llm_admin

logger = logging.getLogger(__name__)

#: Fields an admin may set on a model (besides ``api_key`` and ``access_rules``).
LLM_MODEL_FIELDS = (
    "display_name",
    "provider_type",
    "base_url",
    "model_name",
    "extra_config",
    "max_tokens",
    "default_temperature",
    "price_input_per_1k",
    "price_output_per_1k",
    "rate_limit_rpm",
    "is_active",
    "is_default",
    "supports_tools",
    "supports_streaming",
)
TEST_TIMEOUT = httpx.Timeout(connect=10.0, read=20.0, write=10.0, pool=10.0)


def _require_llm_admin(actor: User | None) -> None:
    if not is_llm_admin(actor):
        raise PermissionDenied(_("Only administrators can manage LLM models."))


def _validation_failed(exc: DjangoValidationError) -> ValidationFailed:
    if hasattr(exc, "error_dict"):
        details = {
            field: [str(m) for m in errors.messages] for field, errors in exc.error_dict.items()
        }
    else:
        details = {"non_field_errors": [str(m) for m in exc.messages]}
    return ValidationFailed(details=details)


def _public_fields(model: LLMModel) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    for name in LLM_MODEL_FIELDS:
        value = getattr(model, name)
        detail[name] = str(value) if isinstance(value, Decimal) else value
    detail["has_api_key"] = model.has_api_key
    return detail


def _save_model(model: LLMModel, access_rules: list[dict[str, Any]] | None) -> None:
    try:
        # The single-default constraint is enforced below, by unsetting the old default.
        model.full_clean(validate_constraints=False)
    except DjangoValidationError as exc:
        raise _validation_failed(exc) from None
    if model.is_default:
        LLMModel.objects.select_for_update().filter(is_default=True).exclude(pk=model.pk).update(
            is_default=False
        )
    model.save()
    if access_rules is not None:
        _replace_access_rules(model, access_rules)


def _replace_access_rules(model: LLMModel, rules: list[dict[str, Any]]) -> None:
    """Rules are ``{"role": "developer", "allow": True}`` or ``{"user": <User>, ...}``."""
    objects = []
    for index, rule in enumerate(rules):
        role = str(rule.get("role") or "")
        user = rule.get("user")
        if (
            bool(role) == bool(user)
            or (role and role not in Role.values)
            or (user is not None and not isinstance(user, User))
        ):
            raise ValidationFailed(
                details={"access_rules": {str(index): [_("Give either a role or a user.")]}}
            )
        objects.append(
            LLMModelAccess(model=model, role=role, user=user, allow=bool(rule.get("allow", True)))
        )
    model.access_rules.all().delete()
    LLMModelAccess.objects.bulk_create(objects)


@transaction.atomic
def llm_model_create(
    actor: User,
    *,
    display_name: str,
    provider_type: str,
    model_name: str,
    base_url: str = "",
    api_key: str = "",
    extra_config: dict[str, Any] | None = None,
    max_tokens: int | None = None,
    default_temperature: float = 0.7,
    price_input_per_1k: Decimal | str | int = Decimal("0"),
    price_output_per_1k: Decimal | str | int = Decimal("0"),
    rate_limit_rpm: int | None = None,
    is_active: bool = True,
    is_default: bool = False,
    supports_tools: bool = True,
    supports_streaming: bool = True,
    access_rules: list[dict[str, Any]] | None = None,
    request: Any = None,
) -> LLMModel:
    """Register a provider model. ``access_rules``: ``[{"role"|"user": …, "allow": bool}]``."""
    _require_llm_admin(actor)
    model = LLMModel(
        display_name=display_name,
        provider_type=provider_type,
        model_name=model_name,
        base_url=base_url or "",
        api_key=api_key or "",
        extra_config=extra_config if extra_config is not None else {},
        max_tokens=max_tokens,
        default_temperature=default_temperature,
        price_input_per_1k=Decimal(str(price_input_per_1k)),
        price_output_per_1k=Decimal(str(price_output_per_1k)),
        rate_limit_rpm=rate_limit_rpm,
        is_active=is_active,
        is_default=is_default,
        supports_tools=supports_tools,
        supports_streaming=supports_streaming,
    )
    _save_model(model, access_rules)
    audit_record(
        actor, action="llm_model.create", obj=model, request=request, detail=_public_fields(model)
    )
    return model


@transaction.atomic
def llm_model_update(
    actor: User,
    *,
    model: LLMModel,
    api_key: str | None = None,
    access_rules: list[dict[str, Any]] | None = None,
    request: Any = None,
    **changes: Any,
) -> LLMModel:
    """Change fields of ``model``. ``api_key``: None keeps the key, "" clears it."""
    _require_llm_admin(actor)
    unknown = sorted(set(changes) - set(LLM_MODEL_FIELDS))
    if unknown:
        raise ValidationFailed(details={name: [_("Unknown field.")] for name in unknown})
    model = LLMModel.objects.select_for_update().get(pk=model.pk)
    changed = sorted(name for name, value in changes.items() if getattr(model, name) != value)
    for name, value in changes.items():
        if name.startswith("price_"):
            value = Decimal(str(value))
        setattr(model, name, value)
    if api_key is not None:
        model.api_key = api_key
        changed.append("api_key")
    _save_model(model, access_rules)
    if access_rules is not None:
        changed.append("access_rules")
    audit_record(
        actor,
        action="llm_model.update",
        obj=model,
        request=request,
        detail={"changed": changed, "has_api_key": model.has_api_key},
    )
    return model


def _agent_versions_using(model: LLMModel) -> int:
    from agents.models import AgentVersion

    return AgentVersion.objects.filter(config__model__llm_model_id=str(model.pk)).count()


def llm_model_delete_refusal(model: LLMModel) -> str | None:
    """Why ``model`` may not be deleted (the default, or used by agents), or None."""
    if model.is_default:
        return _("This is the default model: make another model the default first.")
    used_by = _agent_versions_using(model)
    if used_by:
        return _("%(n)d agent versions use this model: deactivate it instead of deleting it.") % {
            "n": used_by
        }
    return None


@transaction.atomic
def llm_model_delete(actor: User, *, model: LLMModel, request: Any = None) -> None:
    """Delete a model no agent uses; the default or a used model is refused (40901)."""
    _require_llm_admin(actor)
    refusal = llm_model_delete_refusal(model)
    if refusal:
        raise Conflict(refusal)
    audit_record(
        actor,
        action="llm_model.delete",
        obj=model,
        request=request,
        detail={"display_name": model.display_name, "provider_type": model.provider_type},
    )
    model.delete()


# --- users' own keys ---------------------------------------------------------------------------


@transaction.atomic
def user_provider_key_set(
    user: User, *, provider_type: str, api_key: str, base_url: str = "", request: Any = None
) -> UserProviderKey:
    """Store (or replace) the user's own key for a provider type (SPEC §5.2)."""
    errors: dict[str, list[str]] = {}
    if provider_type not in ProviderType.values or provider_type == ProviderType.DEMO:
        errors["provider_type"] = [_("Not a provider type that takes a key.")]
    if not (api_key or "").strip():
        errors["api_key"] = [_("This field may not be blank.")]
    if base_url:
        try:
            validate_base_url(base_url)
        except DjangoValidationError as exc:
            errors["base_url"] = [str(m) for m in exc.messages]
    if errors:
        raise ValidationFailed(details=errors)
    key, created = UserProviderKey.objects.select_for_update().get_or_create(
        user=user,
        provider_type=provider_type,
        defaults={"api_key": api_key.strip(), "base_url": base_url},
    )
    if not created:
        key.api_key = api_key.strip()
        key.base_url = base_url
        key.save(update_fields=["api_key", "base_url", "updated_at"])
    audit_record(
        user,
        action="provider_key.set",
        obj=key,
        request=request,
        detail={"provider_type": provider_type, "created": created, "has_base_url": bool(base_url)},
    )
    return key


@transaction.atomic
def user_provider_key_delete(user: User, *, provider_type: str, request: Any = None) -> None:
    key = UserProviderKey.objects.filter(user=user, provider_type=provider_type).first()
    if key is None:
        raise NotFound()
    audit_record(
        user,
        action="provider_key.delete",
        obj=key,
        request=request,
        detail={"provider_type": provider_type},
    )
    key.delete()


# --- the connection test -----------------------------------------------------------------------


def _test_result(
    *, success: bool, latency_ms: int | None, error: str = "", detail: str = "", status=None
) -> dict[str, Any]:
    return {
        "success": success,
        "latency_ms": latency_ms,
        "error": error or None,
        "detail": detail,
        "status": status,
    }


def _run_connection_test(model: LLMModel) -> dict[str, Any]:
    try:
        config = provider_config_for(model, user=None, require_key=False)
        provider = get_provider(model.provider_type)
    except ProviderError as exc:
        return _test_result(success=False, latency_ms=None, error=exc.message)
    if provider.needs_key and not config.api_key:
        return _test_result(
            success=False,
            latency_ms=None,
            error=_("No API key: set one on the model or in the provider's environment variable."),
        )
    spec = provider.test_request(config)
    if spec is None:
        return _test_result(
            success=True, latency_ms=0, detail=_("The demo model runs offline; nothing to reach.")
        )
    started = time.perf_counter()
    try:
        with outbound_client(timeout=TEST_TIMEOUT, policy=config.policy) as client:
            response = client.request(spec.method, spec.url, headers=spec.headers, json=spec.json)
    except OutboundBlocked as exc:
        return _test_result(
            success=False,
            latency_ms=None,
            error=_("The provider URL is not allowed: %(reason)s") % {"reason": exc.message},
        )
    except httpx.HTTPError as exc:
        error = to_provider_error(exc, secrets=config.secrets)
        message = error.message if error else _("The request failed.")
        return _test_result(success=False, latency_ms=None, error=message)
    latency_ms = int(round((time.perf_counter() - started) * 1000))
    if response.is_success:
        return _test_result(
            success=True,
            latency_ms=latency_ms,
            detail=provider.test_detail(config, response),
            status=response.status_code,
        )
    try:
        body = response.json()
        provider_message = str(
            (body.get("error") or {}).get("message") or body.get("message") or ""
        )
    except (ValueError, AttributeError):
        provider_message = response.text[:300]
    error = status_error(response.status_code, detail=provider_message, secrets=config.secrets)
    return _test_result(
        success=False,
        latency_ms=latency_ms,
        error=error.message,
        detail=scrub(error.detail, config.secrets),
        status=response.status_code,
    )


def llm_model_test(
    actor: User,
    *,
    model: LLMModel | None = None,
    params: dict[str, Any] | None = None,
    request: Any = None,
) -> dict[str, Any]:
    """Test a saved model, or unsaved ``params``, with the provider's own request and headers.

    Returns ``{success, latency_ms, error, detail, status}``; ``error`` is readable
    ("HTTP 401 from provider: invalid API key") and never contains the key.
    """
    _require_llm_admin(actor)
    if model is None:
        params = dict(params or {})
        model = LLMModel(
            display_name=params.pop("display_name", "") or _("Connection test"),
            **{k: v for k, v in params.items() if k in {*LLM_MODEL_FIELDS, "api_key"}},
        )
        try:
            model.full_clean(exclude=["display_name"])
        except DjangoValidationError as exc:
            raise _validation_failed(exc) from None
    result = _run_connection_test(model)
    audit_record(
        actor,
        action="llm_model.test",
        obj=model if model.pk and not model._state.adding else None,
        object_type="integrations.llmmodel",
        request=request,
        detail={
            "provider_type": model.provider_type,
            "success": result["success"],
            "status": result["status"],
        },
    )
    if not result["success"]:
        logger.info("llm connection test failed for %s: %s", model.provider_type, result["error"])
    return result
