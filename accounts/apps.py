from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts import checks  # noqa: F401 - registers system checks
        from accounts.roles import sync_role_groups

        # Groups and their permissions are configuration, kept in code (accounts.roles).
        post_migrate.connect(sync_role_groups, sender=self)
