"""Integration API serializers: validate input and represent output, no side effects.

API keys are write-only: output carries ``has_api_key`` and nothing else about a key.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Role, User
from agentstore.api.serializers import StrictModelSerializer, StrictSerializer
from integrations.models import LLMModel, LLMModelAccess, ProviderType, UserProviderKey
from integrations.models.llm import validate_base_url, validate_model_config

PUBLIC_FIELDS = [
    "id",
    "display_name",
    "provider_type",
    "model_name",
    "max_tokens",
    "default_temperature",
    "price_input_per_1k",
    "price_output_per_1k",
    "supports_tools",
    "supports_streaming",
    "is_default",
    "has_api_key",
]


def _api_key_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        write_only=True,
        trim_whitespace=True,
        max_length=4096,
        style={"input_type": "password"},
        **kwargs,
    )


# --- output -----------------------------------------------------------------------------------


class LLMModelSerializer(serializers.ModelSerializer):
    """A model as any user sees it: what they need to pick one, no endpoint details."""

    has_api_key = serializers.BooleanField(read_only=True)

    class Meta:
        model = LLMModel
        fields = PUBLIC_FIELDS
        read_only_fields = fields


class LLMModelAccessSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False, allow_blank=True)
    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(), required=False, allow_null=True
    )
    allow = serializers.BooleanField(default=True)

    class Meta:
        model = LLMModelAccess
        fields = ["role", "user", "allow"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("role")) == bool(attrs.get("user")):
            raise serializers.ValidationError(_("Give either a role or a user."))
        return attrs


class LLMModelAdminSerializer(serializers.ModelSerializer):
    """A model as an admin sees it: everything except the key itself."""

    has_api_key = serializers.BooleanField(read_only=True)
    access_rules = LLMModelAccessSerializer(many=True, read_only=True)

    class Meta:
        model = LLMModel
        fields = [
            *PUBLIC_FIELDS,
            "base_url",
            "extra_config",
            "rate_limit_rpm",
            "is_active",
            "access_rules",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# --- input --------------------------------------------------------------------------------------


class LLMModelWriteSerializer(StrictModelSerializer):
    """Create/replace/patch a model. ``api_key``: omitted keeps the key, "" clears it."""

    api_key = _api_key_field(required=False, allow_blank=True)
    access_rules = LLMModelAccessSerializer(many=True, required=False)

    class Meta:
        model = LLMModel
        fields = [
            "display_name",
            "provider_type",
            "base_url",
            "api_key",
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
            "access_rules",
        ]
        extra_kwargs = {
            "base_url": {"required": False, "allow_blank": True},
            # One default is kept by the service (it unsets the old one), not refused here.
            "is_default": {"validators": []},
        }
        validators: list = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: LLMModel | None = self.instance

        def current(name: str, default: Any) -> Any:
            if name in attrs:
                return attrs[name]
            return getattr(instance, name) if instance is not None else default

        errors = validate_model_config(
            provider_type=current("provider_type", ""),
            base_url=current("base_url", ""),
            extra_config=current("extra_config", {}),
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class LLMModelTestSerializer(StrictSerializer):
    """Unsaved parameters for a connection test."""

    display_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    provider_type = serializers.ChoiceField(choices=ProviderType.choices)
    base_url = serializers.CharField(required=False, allow_blank=True, max_length=500)
    api_key = _api_key_field(required=False, allow_blank=True)
    model_name = serializers.CharField(max_length=200)
    extra_config = serializers.JSONField(required=False)

    def validate_base_url(self, value: str) -> str:
        if value:
            try:
                validate_base_url(value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(list(exc.messages)) from None
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("extra_config", {})
        errors = validate_model_config(
            provider_type=attrs["provider_type"],
            base_url=attrs.get("base_url", ""),
            extra_config=attrs["extra_config"],
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ConnectionTestResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    latency_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    detail = serializers.CharField(allow_blank=True)
    status = serializers.IntegerField(allow_null=True)


class ProviderKeySerializer(serializers.ModelSerializer):
    has_api_key = serializers.BooleanField(read_only=True)

    class Meta:
        model = UserProviderKey
        fields = ["provider_type", "base_url", "has_api_key", "created_at", "updated_at"]
        read_only_fields = fields


class ProviderKeyWriteSerializer(StrictSerializer):
    api_key = _api_key_field()
    base_url = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
