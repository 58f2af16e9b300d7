"""Load the demo data of the embedded set-up: accounts, the offline demo model, a catalogue.

Idempotent: a second run leaves existing data alone, so `make run` can call it every time.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_USERS, seed_demo_users


class Command(BaseCommand):
    help = "Create demo users, the offline demo model and a demo catalogue (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="Allow seeding a production database."
        )

    def handle(self, *args, force: bool = False, **options) -> None:
        if not settings.EMBEDDED_DATABASE and not settings.DEBUG and not force:
            raise CommandError(
                "Refusing to load demo data into a production database "
                "(use --force if you really mean it)."
            )
        seed_demo_users()
        self.stdout.write("demo users: " + ", ".join(u[0] for u in DEMO_USERS))
        for label, dotted in [
            ("demo model", "integrations.demo.ensure_demo_model"),
            ("built-in agents", "agents.builtin.ensure_builtin_agents"),
            ("demo catalogue", "agents.demo.seed_demo_catalogue"),
        ]:
            module_name, _, func_name = dotted.rpartition(".")
            module = __import__(module_name, fromlist=[func_name])
            result = getattr(module, func_name)()
            self.stdout.write(f"{label}: {result if result is not None else 'ok'}")
