"""System checks that catch a misconfigured deployment (STYLE §4)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register(deploy=True)
def embedded_pieces_in_production(app_configs, **kwargs):
    warnings = []
    if settings.DEBUG:
        return warnings
    if settings.EMBEDDED_DATABASE:
        warnings.append(
            Warning(
                "SQLite (embedded default) is in use with DEBUG off.",
                hint="Set DATABASE_URL to a PostgreSQL database for production.",
                id="agentstore.W001",
            )
        )
    if not settings.REDIS_URL:
        warnings.append(
            Warning(
                "The in-memory channel layer and cache are in use with DEBUG off; they only "
                "work inside one process.",
                hint="Set REDIS_URL for production.",
                id="agentstore.W002",
            )
        )
    if settings.TASK_DISPATCH != "celery":
        warnings.append(
            Warning(
                "Agent runs execute inside the web process (embedded dispatch) with DEBUG off.",
                hint="Set REDIS_URL (or CELERY_BROKER_URL) and run Celery workers.",
                id="agentstore.W003",
            )
        )
    if not settings.SECRET_KEYS:
        warnings.append(
            Warning(
                "SECRET_KEYS is not set; stored secrets are encrypted with a key derived from "
                "SECRET_KEY, so rotating SECRET_KEY would make them unreadable.",
                hint=(
                    "Set SECRET_KEYS=<id>:<base64 key> and run manage.py rotate_secrets "
                    "(docs/operations.md, 'Secrets at rest')."
                ),
                id="agentstore.W004",
            )
        )
    return warnings
