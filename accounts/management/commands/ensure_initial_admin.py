"""Create the first admin from INITIAL_ADMIN_EMAIL / INITIAL_ADMIN_PASSWORD (SPEC §3).

Does nothing when an admin already exists or the settings are empty; there is no built-in
password. Safe to run on every start.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.services import initial_admin_ensure
from agentstore.errors import DomainError


class Command(BaseCommand):
    help = "Create an admin from INITIAL_ADMIN_EMAIL / INITIAL_ADMIN_PASSWORD if none exists."

    def handle(self, *args, **options) -> None:
        try:
            user = initial_admin_ensure(
                email=settings.INITIAL_ADMIN_EMAIL, password=settings.INITIAL_ADMIN_PASSWORD
            )
        except DomainError as exc:
            details = f" {exc.details}" if exc.details else ""
            raise CommandError(f"{exc.message}{details}") from exc
        if user is None:
            self.stdout.write("initial admin: nothing to do")
        else:
            self.stdout.write(self.style.SUCCESS(f"initial admin created: {user.username}"))
