from __future__ import annotations

from django.conf import settings


def preferences(request) -> dict:
    user = getattr(request, "user", None)
    theme = (
        getattr(user, "theme", "system")
        if getattr(user, "is_authenticated", False)
        else (request.COOKIES.get("theme", "system"))
    )
    return {
        "theme": theme if theme in {"light", "dark", "system"} else "system",
        "app_version": settings.APP_VERSION,
    }
