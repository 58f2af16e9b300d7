from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"
    verbose_name = _("Integrations")

    def ready(self) -> None:
        from integrations import secrets

        # Fail at start-up, not at the first encryption, when SECRET_KEYS or SECRET_CIPHER
        # is wrong (the error names key ids, never key material).
        secrets.get_keyring()
