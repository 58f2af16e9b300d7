"""The chat pages of the store website (SPEC §5): the list of the user's chats, one chat,
"new chat with this agent", and the developer's test chat against a draft version.

Views are thin: they call one selector or service and render. The thread itself is drawn
by ``static/js/chat.js`` from the REST API and the WebSocket ``/ws/chats/<id>/``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agents import selectors as agent_selectors
from agentstore.errors import DomainError, NotFound, PermissionDenied
from chats import chat_selectors, messaging
from chats.models import Chat

SIDEBAR_SIZE = 100


def _error_text(exc: DomainError) -> str:
    details = exc.details if isinstance(exc.details, dict) else {}
    texts = [str(message) for values in details.values() for message in (values or [])]
    return " ".join(texts) if texts else str(exc.message)


# Every text static/js/chat.js shows; translated per request and handed over with
# json_script (the script looks them up by their English text).
JS_STRINGS = (
    gettext_noop("Assistant"), gettext_noop("You"), gettext_noop("Stopped"),
    gettext_noop("Failed"), gettext_noop("The answer failed."), gettext_noop("Thinking…"),
    gettext_noop("Sources"), gettext_noop("Tool"), gettext_noop("Retrieved sources"),
    gettext_noop("Query"),
    gettext_noop("Passages"), gettext_noop("Arguments"), gettext_noop("Result"),
    gettext_noop("Preparing…"), gettext_noop("Running…"), gettext_noop("Done"),
    gettext_noop("Cancelled"), gettext_noop("Waiting for approval"),
    gettext_noop("Previous version"), gettext_noop("Next version"), gettext_noop("Edit"),
    gettext_noop("Regenerate"), gettext_noop("Copy"), gettext_noop("Copied"),
    gettext_noop("Edit message"), gettext_noop("Cancel"), gettext_noop("Save and send"),
    gettext_noop("Save"), gettext_noop("Chat title"), gettext_noop("Reconnecting…"),
    gettext_noop("This chat is not available."), gettext_noop("The model is busy; retrying…"),
    gettext_noop("Something went wrong."),
    gettext_noop("Delete this chat? This cannot be undone."),
    # "%(n)s" is filled in by the script.
    gettext_noop("%(n)s ms"), gettext_noop("%(n)s s"),
)  # fmt: skip


def chat_strings() -> dict[str, str]:
    return {text: _(text) for text in JS_STRINGS}


def upgrade_target(chat: Chat | None) -> Any:
    """The agent's live version when the chat is pinned to another one (offer an upgrade)."""
    if chat is None or chat.is_test:
        return None
    current = chat.agent.current_version
    if current is None or current.pk == chat.agent_version_id:
        return None
    return current


def _installed(user) -> list[Any]:
    """The user's installs of agents that can be chatted with (in the store)."""
    return [
        install
        for install in agent_selectors.installs_for(user)
        if install.agent.is_in_store and install.agent.current_version_id
    ]


def _page(request: HttpRequest, chat: Chat | None) -> HttpResponse:
    status = "archived" if request.GET.get("status") == "archived" else "active"
    if chat is not None and chat.status == Chat.Status.ARCHIVED and "status" not in request.GET:
        status = "archived"
    query = request.GET.get("q", "").strip()[:100]
    chats = chat_selectors.chats_for(request.user, q=query, status=status)[:SIDEBAR_SIZE]
    return render(
        request,
        "chats/chat.html",
        {
            "nav_active": "chats",
            "chat": chat,
            "chats": chats,
            "query": query,
            "status_filter": status,
            "installed": _installed(request.user),
            "upgrade_to": upgrade_target(chat),
            "chat_strings": chat_strings(),
        },
    )


@login_required
@require_GET
def chat_index(request: HttpRequest) -> HttpResponse:
    return _page(request, None)


@login_required
@require_GET
def chat_detail(request: HttpRequest, chat_id: Any) -> HttpResponse:
    try:
        chat = chat_selectors.chat_for(request.user, chat_id)
    except NotFound as exc:
        raise Http404 from exc
    return _page(request, chat)


@login_required
@require_http_methods(["GET", "POST"])
def chat_new(request: HttpRequest) -> HttpResponse:
    """``/chats/new?agent=<id>``: a new chat with an installed agent, then its page.

    A GET is accepted because the store links here ("Chat now"); it creates nothing the
    user cannot delete and refuses agents the user has not installed.
    """
    agent_id = request.POST.get("agent") or request.GET.get("agent") or ""
    try:
        chat = messaging.chat_create(request.user, agent_id=agent_id, request=request)
    except DomainError as exc:
        messages.error(request, _error_text(exc))
        return redirect("chats:index")
    return redirect("chats:detail", chat_id=chat.pk)


@login_required
@require_POST
def test_chat_new(request: HttpRequest, agent_id: Any, version_id: Any) -> HttpResponse:
    """A fresh test chat of a developer of the agent against one of its versions (drafts
    included). Nobody else can open it: it belongs to the developer who started it."""
    try:
        chat = messaging.chat_create(
            request.user,
            agent_id=agent_id,
            agent_version_id=version_id,
            is_test=True,
            request=request,
        )
    except (NotFound, PermissionDenied) as exc:
        raise Http404 from exc
    except DomainError as exc:
        messages.error(request, _error_text(exc))
        return redirect(reverse("portal:version", args=[agent_id, version_id]) + "#test-chat")
    url = reverse("portal:version", args=[chat.agent_id, chat.agent_version_id])
    return redirect(f"{url}#test-chat")
