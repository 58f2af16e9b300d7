"""Admin-managed system settings (SPEC §4.4): key/value pairs such as max sessions per user.

Read them with ``integrations.system_settings.setting_get`` (cached) and write them with
``setting_set`` (audited, invalidates the cache).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from integrations.fields import EncryptedTextField


class SystemSetting(models.Model):
    key = models.SlugField(_("key"), max_length=100, unique=True)
    value = models.JSONField(_("value"), null=True, blank=True)
    description = models.TextField(_("description"), blank=True)
    is_secret = models.BooleanField(
        _("secret"), default=False, help_text=_("Secret settings keep their value encrypted.")
    )
    secret_value = EncryptedTextField(_("secret value"), blank=True, default="")
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("updated by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("system setting")
        verbose_name_plural = _("system settings")
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key
