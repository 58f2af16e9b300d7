"""LLM providers and models (SPEC §6.1), who may use them, and users' own provider keys.

API keys are :class:`~integrations.fields.EncryptedTextField` columns: the database holds
ciphertext only, and nothing but ``has_api_key`` ever leaves the server. Key resolution at
run time lives in :func:`integrations.llm.base.resolve_api_key`.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Role
from integrations.fields import EncryptedTextField


class ProviderType(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    DASHSCOPE = "dashscope", "DashScope"
    AZURE_OPENAI = "azure_openai", "Azure OpenAI"
    OLLAMA = "ollama", "Ollama"
    CUSTOM = "custom", _("Custom (OpenAI-compatible)")
    DEMO = "demo", _("Demo (offline)")


#: Provider types whose endpoint cannot be guessed: the admin must give a base URL.
BASE_URL_REQUIRED = frozenset({ProviderType.AZURE_OPENAI, ProviderType.CUSTOM, ProviderType.OLLAMA})
#: Provider types that take no API key at all.
KEYLESS = frozenset({ProviderType.OLLAMA, ProviderType.DEMO})


def validate_base_url(value: str) -> None:
    parts = urlsplit(value or "")
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError(
            _("Enter an http:// or https:// URL with a host name."), code="invalid_base_url"
        )
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and error messages; use the API key field.
        raise ValidationError(
            _("The base URL must not contain a user name or password."), code="invalid_base_url"
        )


def validate_model_config(
    *, provider_type: str, base_url: str, extra_config: object
) -> dict[str, list[str]]:
    """Field errors for a model's type-dependent rules (shared by clean() and the API)."""
    errors: dict[str, list[str]] = {}
    if provider_type in BASE_URL_REQUIRED and not base_url:
        errors["base_url"] = [str(_("A base URL is required for this provider type."))]
    if not isinstance(extra_config, dict):
        errors["extra_config"] = [str(_("Extra config must be a JSON object."))]
    elif (
        provider_type == ProviderType.AZURE_OPENAI
        and not str(extra_config.get("api_version") or "").strip()
    ):
        errors["extra_config"] = [
            str(_("Azure OpenAI needs an api_version in the extra config (e.g. 2024-06-01)."))
        ]
    return errors


class LLMModel(models.Model):
    """One usable model of one provider endpoint, managed by admins."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    display_name = models.CharField(_("display name"), max_length=100)
    provider_type = models.CharField(
        _("provider type"), max_length=20, choices=ProviderType.choices
    )
    base_url = models.CharField(
        _("base URL"),
        max_length=500,
        blank=True,
        validators=[validate_base_url],
        help_text=_("Required for Azure OpenAI, Ollama and custom endpoints."),
    )
    api_key = EncryptedTextField(
        _("API key"),
        blank=True,
        default="",
        help_text=_("Stored encrypted. Leave blank to keep the current key."),
    )
    model_name = models.CharField(
        _("model name"), max_length=200, help_text=_("e.g. gpt-4o, qwen-max, claude-sonnet-4-5")
    )
    extra_config = models.JSONField(
        _("extra config"),
        default=dict,
        blank=True,
        help_text=_(
            "Provider-specific options, e.g. Azure api_version and deployment, or context_size."
        ),
    )
    max_tokens = models.PositiveIntegerField(
        _("max output tokens"), null=True, blank=True, help_text=_("Empty: provider default.")
    )
    default_temperature = models.FloatField(
        _("default temperature"),
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
    )
    price_input_per_1k = models.DecimalField(
        _("price per 1k input tokens"), max_digits=12, decimal_places=6, default=Decimal("0")
    )
    price_output_per_1k = models.DecimalField(
        _("price per 1k output tokens"), max_digits=12, decimal_places=6, default=Decimal("0")
    )
    rate_limit_rpm = models.PositiveIntegerField(
        _("rate limit (requests per minute)"),
        null=True,
        blank=True,
        help_text=_("Empty: no limit."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    is_default = models.BooleanField(_("default"), default=False)
    supports_tools = models.BooleanField(_("supports tools"), default=True)
    supports_streaming = models.BooleanField(_("supports streaming"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("LLM model")
        verbose_name_plural = _("LLM models")
        ordering = ["display_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="llm_model_single_default",
            ),
        ]
        indexes = [models.Index(fields=["is_active", "provider_type"])]

    def __str__(self) -> str:
        return self.display_name

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)

    def clean(self) -> None:
        super().clean()
        errors = validate_model_config(
            provider_type=self.provider_type,
            base_url=self.base_url,
            extra_config=self.extra_config,
        )
        if errors:
            raise ValidationError(errors)

    def estimate_cost(self, *, input_tokens: int, output_tokens: int) -> Decimal:
        """Estimated cost in the price's currency, from the per-1k-token prices."""
        cost = (
            Decimal(input_tokens) * self.price_input_per_1k
            + Decimal(output_tokens) * self.price_output_per_1k
        ) / Decimal(1000)
        return cost.quantize(Decimal("0.000001"))


class LLMModelAccess(models.Model):
    """An access rule: a model with no allow rules is open to everyone (SPEC §6.1).

    With allow rules, only matching roles/users may use the model; a deny rule always
    wins over allow rules and over the open default.
    """

    model = models.ForeignKey(LLMModel, on_delete=models.CASCADE, related_name="access_rules")
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    allow = models.BooleanField(_("allow"), default=True, help_text=_("Unticked: deny."))

    class Meta:
        verbose_name = _("LLM model access rule")
        verbose_name_plural = _("LLM model access rules")
        constraints = [
            models.CheckConstraint(
                condition=(Q(role="") & Q(user__isnull=False))
                | (~Q(role="") & Q(user__isnull=True)),
                name="llm_access_role_xor_user",
            ),
        ]

    def __str__(self) -> str:
        subject = self.role or str(self.user_id)
        return f"{'allow' if self.allow else 'deny'} {subject}"

    def clean(self) -> None:
        super().clean()
        if bool(self.role) == bool(self.user_id):
            raise ValidationError(_("Choose either a role or a user."))


class UserProviderKey(models.Model):
    """A user's own key for a provider type ("bring your own key", SPEC §5.2)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_keys"
    )
    provider_type = models.CharField(
        _("provider type"), max_length=20, choices=ProviderType.choices
    )
    api_key = EncryptedTextField(_("API key"))
    base_url = models.CharField(
        _("base URL"),
        max_length=500,
        blank=True,
        validators=[validate_base_url],
        help_text=_("Optional: your own endpoint for this provider (e.g. your Azure resource)."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("user provider key")
        verbose_name_plural = _("user provider keys")
        ordering = ["provider_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "provider_type"], name="uniq_user_provider_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_type} key of {self.user_id}"

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)
