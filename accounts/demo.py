"""Demo accounts for the embedded set-up (`make run`). Passwords are printed in the README.

Never used in production: `seed_demo` refuses to run when DEBUG is off and a real
database (DATABASE_URL) is configured, unless forced.
"""

from __future__ import annotations

from django.db import transaction

from accounts.models import Role, User

DEMO_USERS = [
    # username, role, password, display name
    ("admin", Role.ADMIN, "admin-demo-pass", "Ada Admin"),
    ("reviewer", Role.REVIEWER, "reviewer-demo-pass", "Rex Reviewer"),
    ("developer", Role.DEVELOPER, "developer-demo-pass", "Dora Developer"),
    ("user", Role.USER, "user-demo-pass", "Uma User"),
]


@transaction.atomic
def seed_demo_users() -> list[User]:
    """Create the four demo accounts if missing; existing ones are left as they are."""
    users = []
    for username, role, password, display_name in DEMO_USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(
                username=username,
                email=f"{username}@demo.agentstore.local",
                display_name=display_name,
                role=role,
                is_staff=role in {Role.ADMIN, Role.REVIEWER},
                is_superuser=role == Role.ADMIN,
            )
            user.set_password(password)
            user.save()
        users.append(user)
    return users
