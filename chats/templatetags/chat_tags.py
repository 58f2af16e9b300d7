"""Template tags for embedding the chat component in other pages (the portal's test chat)."""

from __future__ import annotations

from typing import Any

from django import template

from chats import chat_selectors
from chats.models import Chat

register = template.Library()


@register.simple_tag(takes_context=True)
def latest_test_chat(context: dict[str, Any], version: Any) -> Chat | None:
    """The newest test chat of the signed-in developer against ``version`` (only their own:
    a test chat is visible to the developer who started it and to nobody else)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if version is None or not getattr(user, "is_authenticated", False):
        return None
    return (
        chat_selectors.chats_for(user, status=Chat.Status.ACTIVE, is_test=True)
        .filter(agent_version=version)
        .first()
    )


@register.simple_tag
def chat_strings() -> dict[str, str]:
    from chats.views import chat_strings as strings

    return strings()
