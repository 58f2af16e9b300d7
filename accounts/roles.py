"""Roles as Django groups with permissions (SPEC §3).

The permission sets live here, in code, and are applied after every migrate; apps that
add models add their permissions to ``ROLE_PERMISSIONS``. A permission that does not
exist yet (its app has not been migrated) is skipped, not an error.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import Group, Permission

from accounts.models import Role

logger = logging.getLogger(__name__)

# "app_label.codename" strings. Each role also has everything of the roles before it.
_USER = [
    "agents.install_agent",
    "agents.rate_agent",
    "chats.add_chat",
]
_DEVELOPER = [
    "agents.add_agent",
    "agents.change_agent",
    "agents.submit_agentversion",
    "integrations.add_skill",
    "integrations.add_mcpconnection",
    "knowledge.add_knowledgebase",
]
_REVIEWER = [
    "agents.review_agentversion",
    "agents.view_agent",
    "agents.view_agentversion",
    "accounts.view_auditlog",
]
_ADMIN = [
    "integrations.view_systemsetting",
    "integrations.add_systemsetting",
    "integrations.change_systemsetting",
    "integrations.delete_systemsetting",
]
ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.USER: _USER,
    Role.DEVELOPER: _USER + _DEVELOPER,
    Role.REVIEWER: _USER + _REVIEWER,
    Role.ADMIN: _USER + _DEVELOPER + _REVIEWER + _ADMIN,
}


def group_name(role: str) -> str:
    return f"role:{role}"


def _resolve(names: list[str]) -> list[Permission]:
    found = []
    for name in names:
        app_label, _, codename = name.partition(".")
        perm = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if perm is not None:
            found.append(perm)
    return found


def sync_role_groups(**kwargs) -> None:
    """post_migrate receiver: make the role groups match ROLE_PERMISSIONS."""
    for role in Role.values:
        group, _ = Group.objects.get_or_create(name=group_name(role))
        group.permissions.set(_resolve(ROLE_PERMISSIONS[role]))
