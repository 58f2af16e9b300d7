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
        # No sender: post_migrate is sent per app in INSTALLED_APPS order, and permissions of
        # apps listed after accounts only exist once their own signal has run.
        post_migrate.connect(sync_role_groups, dispatch_uid="accounts.sync_role_groups")
