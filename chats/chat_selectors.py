"""Reads of chats and their message trees, scoped to the acting user (STYLE §2).

A chat's messages form a tree (``ChatMessage.parent``): editing a user message or
regenerating an answer adds a sibling. The chat shows one path from a root to a leaf, the
*active branch*; the chosen leaf is kept in ``chat.context["active_leaf"]`` (written by
``chats.messaging``). Another user's chat — and a deleted one — is "not found" (40401).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from accounts.models import User
from agents.selectors import parse_uuid
from agentstore.errors import NotFound, ValidationFailed
from chats import events
from chats.models import Chat, ChatMessage, Run, RunEvent

ACTIVE_LEAF_KEY = "active_leaf"
DEFAULT_PAGE = 50
MAX_PAGE = 200


# --- chats --------------------------------------------------------------------------------


def chats_for(
    user: User,
    *,
    q: str = "",
    status: str | None = None,
    is_test: bool | None = False,
) -> QuerySet[Chat]:
    """The user's chats, most recently updated first; deleted chats never appear.

    ``status`` narrows to ``active`` or ``archived``; ``q`` searches titles and the agent's
    name; ``is_test`` (default ``False``) keeps developer test chats out of the ordinary list
    (``None`` returns both kinds).
    """
    if not getattr(user, "is_authenticated", False):
        return Chat.objects.none()
    queryset = (
        Chat.objects.filter(user=user)
        .exclude(status=Chat.Status.DELETED)
        .select_related("agent", "agent_version")
    )
    if status:
        queryset = queryset.filter(status=status)
    if is_test is not None:
        queryset = queryset.filter(is_test=is_test)
    q = (q or "").strip()
    if q:
        queryset = queryset.filter(Q(title__icontains=q) | Q(agent__name__icontains=q))
    return queryset.order_by("-updated_at", "-id")


def chat_for(user: User, chat_id: Any) -> Chat:
    """One of the user's chats (active or archived); anything else is NotFound."""
    pk = parse_uuid(chat_id)
    chat = chats_for(user, is_test=None).filter(pk=pk).first() if pk else None
    if chat is None:
        raise NotFound()
    return chat


def chat_row_for(user: User, chat_id: Any) -> Chat:
    """Like :func:`chat_for`, without the agent and version and without ordering: what a new
    turn checks first (status, active branch) is the chat's own row, and the turn reads
    it again under a lock anyway."""
    pk = parse_uuid(chat_id)
    rows = chats_for(user, is_test=None).select_related(None).order_by()
    found = list(rows.filter(pk=pk)[:1]) if pk else []
    if not found:
        raise NotFound()
    return found[0]


def message_for(chat: Chat, message_id: Any) -> ChatMessage:
    """A message of ``chat`` (the caller has checked access to the chat)."""
    pk = parse_uuid(message_id)
    message = ChatMessage.objects.filter(chat_id=chat.pk, pk=pk).first() if pk else None
    if message is None:
        raise NotFound(_("This message is not part of the chat."))
    return message


def chat_run_for(user: User, chat: Chat, run_id: Any) -> Run:
    """A run of ``chat`` owned by ``user``; a run of another chat or user is NotFound."""
    pk = parse_uuid(run_id)
    run = Run.objects.filter(pk=pk, chat_id=chat.pk, user=user).first() if pk else None
    if run is None:
        raise NotFound(_("This run is not part of the chat."))
    return run


def active_runs(chat: Chat) -> list[dict[str, Any]]:
    """Runs of the chat still producing events (a reconnecting client resumes them)."""
    rows = (
        Run.objects.filter(chat_id=chat.pk, status__in=Run.ACTIVE)
        .order_by("created_at", "id")
        .values("id", "status", "assistant_message_id")
    )
    return [
        {
            "run_id": str(row["id"]),
            "status": row["status"],
            "assistant_message_id": str(row["assistant_message_id"] or "") or None,
        }
        for row in rows
    ]


# --- the message tree --------------------------------------------------------------------


@dataclass
class MessageTree:
    """The shape of a chat's message tree: ids only, children ordered oldest first."""

    parent: dict[uuid.UUID, uuid.UUID | None] = field(default_factory=dict)
    children: dict[uuid.UUID | None, list[uuid.UUID]] = field(default_factory=dict)

    def __contains__(self, message_id: Any) -> bool:
        return message_id in self.parent

    def siblings(self, message_id: uuid.UUID) -> list[uuid.UUID]:
        return self.children.get(self.parent.get(message_id), [])

    def latest_leaf(self, start: uuid.UUID | None = None) -> uuid.UUID | None:
        """Follow the newest child from ``start`` (``None``: the newest root) to a leaf."""
        node = start
        while self.children.get(node):
            node = self.children[node][-1]
        return node

    def path_to(self, leaf: uuid.UUID | None) -> list[uuid.UUID]:
        """Root → ``leaf``."""
        path: list[uuid.UUID] = []
        node = leaf
        while node is not None and len(path) <= len(self.parent):
            path.append(node)
            node = self.parent.get(node)
        path.reverse()
        return path


def message_tree(chat_id: Any) -> MessageTree:
    tree = MessageTree()
    rows = (
        ChatMessage.objects.filter(chat_id=chat_id)
        .order_by("created_at", "id")
        .values_list("id", "parent_id")
    )
    for message_id, parent_id in rows:
        tree.parent[message_id] = parent_id
        tree.children.setdefault(parent_id, []).append(message_id)
    return tree


def active_leaf(chat: Chat, tree: MessageTree) -> uuid.UUID | None:
    """The end of the active branch: the stored choice (extended to the newest leaf below
    it), or the newest path when nothing valid is stored."""
    stored = parse_uuid((chat.context or {}).get(ACTIVE_LEAF_KEY))
    if stored is not None and stored in tree:
        return tree.latest_leaf(stored)
    return tree.latest_leaf(None)


@dataclass
class BranchPage:
    """A page of the active branch, oldest → newest, with sibling info per message."""

    messages: list[ChatMessage]
    siblings: dict[uuid.UUID, list[uuid.UUID]]
    has_more: bool
    leaf_id: uuid.UUID | None
    total: int

    def sibling_info(self, message: ChatMessage) -> dict[str, Any]:
        ids = self.siblings.get(message.pk, [message.pk])
        return {
            "index": ids.index(message.pk) + 1,
            "count": len(ids),
            "ids": [str(i) for i in ids],
        }


def branch_page(chat: Chat, *, before_id: Any = None, limit: int = DEFAULT_PAGE) -> BranchPage:
    """The messages of the active branch before ``before_id`` (the newest ``limit`` of them).

    Two queries whatever the chat's size: the tree's ids, then the page's rows.
    """
    limit = max(1, min(int(limit), MAX_PAGE))
    tree = message_tree(chat.pk)
    leaf = active_leaf(chat, tree)
    path = tree.path_to(leaf)
    end = len(path)
    if before_id not in (None, ""):
        pk = parse_uuid(before_id)
        if pk is None or pk not in path:
            raise ValidationFailed(
                details={"before_id": [_("This message is not on the chat's active branch.")]}
            )
        end = path.index(pk)
    start = max(0, end - limit)
    window = path[start:end]
    rows = {
        message.pk: message
        for message in ChatMessage.objects.filter(pk__in=window).select_related(
            "agent_version", "run"
        )
    }
    messages = [rows[pk] for pk in window if pk in rows]
    return BranchPage(
        messages=messages,
        siblings={pk: tree.siblings(pk) for pk in window},
        has_more=start > 0,
        leaf_id=leaf,
        total=len(path),
    )


def branch_messages(chat: Chat) -> list[ChatMessage]:
    """The whole active branch, oldest first (exports)."""
    tree = message_tree(chat.pk)
    path = tree.path_to(active_leaf(chat, tree))
    rows = {
        message.pk: message
        for message in ChatMessage.objects.filter(pk__in=path).select_related("agent_version")
    }
    return [rows[pk] for pk in path if pk in rows]


# --- stored run events --------------------------------------------------------------------


def stored_events(
    run_id: Any, *, after: int, before: int | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Stored events of a run with ``after < seq (< before)``, in order, as they travel
    (``chats.events.run_event``). The caller has checked access to the run."""
    rows = RunEvent.objects.filter(run_id=run_id, seq__gt=after)
    if before is not None:
        rows = rows.filter(seq__lt=before)
    rows = rows.order_by("seq").values_list("seq", "payload")[: max(1, limit)]
    return [events.run_event(run_id, seq, payload) for seq, payload in rows]
