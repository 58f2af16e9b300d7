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

        from django.db.models.signals import post_delete, post_save

        from integrations.models import SystemSetting
        from integrations.system_settings import forget_memo

        def changed(sender, instance, **kwargs) -> None:
            forget_memo(instance.key)

        # Any write of a row in this process (the admin, a test) forgets the memo at once.
        post_save.connect(changed, sender=SystemSetting, weak=False, dispatch_uid="setting-memo")
        post_delete.connect(changed, sender=SystemSetting, weak=False, dispatch_uid="setting-memo")
