from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chats"
    verbose_name = _("Chats")

    def ready(self) -> None:
        from agents.checks_review import register_smoke_runner
        from chats.runtime.smoke import smoke_run

        # The review check (agents) runs versions with this app's runtime; agents cannot
        # import chats, so the runtime registers itself (docs/architecture.md).
        register_smoke_runner(smoke_run)
