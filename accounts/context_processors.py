"""Template context for every page: theme (no flash of the wrong theme), active nav section."""

from __future__ import annotations

from django.conf import settings

THEMES = {"light", "dark", "system"}
THEME_COOKIE = "theme"
# First path segment → the navigation entry marked aria-current.
_NAV_SECTIONS = {
    "": "store",
    "search": "store",
    "categories": "store",
    "agents": "store",
    "my-agents": "my-agents",
    "chats": "chats",
    "portal": "portal",
    "accounts": "accounts",
}


def theme_for(request) -> str:
    """The user's stored theme; for anonymous visitors the ``theme`` cookie."""
    user = getattr(request, "user", None)
    if getattr(user, "is_authenticated", False):
        theme = getattr(user, "theme", "system")
    else:
        theme = request.COOKIES.get(THEME_COOKIE, "system")
    return theme if theme in THEMES else "system"


def preferences(request) -> dict:
    segment = request.path.strip("/").split("/", 1)[0]
    return {
        "theme": theme_for(request),
        "nav_active": _NAV_SECTIONS.get(segment, ""),
        "app_version": settings.APP_VERSION,
    }
