from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AgentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "agents"
    verbose_name = _("Agents")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts.roles import sync_role_groups
        from agents.builtin import ensure_builtin_agents_after_migrate

        # accounts syncs the role groups when *its* post_migrate fires, before this app's
        # permissions exist on a fresh database; sync again once they do.
        post_migrate.connect(sync_role_groups, sender=self, dispatch_uid="agents_sync_roles")
        post_migrate.connect(
            ensure_builtin_agents_after_migrate, sender=self, dispatch_uid="agents_builtins"
        )
