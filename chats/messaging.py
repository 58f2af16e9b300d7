"""Chat services (SPEC §5.2; STYLE §2–3): sessions, turns, branches, limits, export.

A *turn* is one user message answered by one run: :func:`chat_message_post`,
:func:`chat_regenerate` and :func:`chat_edit_message` each store, in ONE transaction, the
user message (unless regenerating), the run pinned to the chat's agent version and the
empty assistant message (status ``sending``); the run is dispatched on commit, so the
worker never looks for rows that do not exist yet. Every limit is checked before anything
is written or queued:

- the chat is active (archived: 40901; deleted or someone else's: 40401);
- the content is non-empty and at most ``MAX_CONTENT_CHARS`` (40002);
- no answer is still being written in this chat (40901 with the run id);
- the user's concurrent runs (``max_concurrent_runs_per_user``, 42901 + ``retry_after``);
- the user's messages per minute (``chat_messages_per_minute``, 42901 + ``retry_after``).

Limits come from system settings (admin-managed) with ``settings.*`` defaults. Sessions
(``max_sessions_per_user``) are counted when a chat is created or restored.

Branches: the chat shows one path of its message tree; the chosen leaf is stored in
``chat.context["active_leaf"]`` (``chats.chat_selectors`` reads it). A new turn makes its
assistant message the active leaf; :func:`chat_branch_select` switches to a sibling.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import User
from agents.models import Agent, AgentVersion, Install
from agents.selectors import agent_role, parse_uuid
from agents.services import install_touch
from agentstore.db import fetch_all, fetch_scalars, pipelined
from agentstore.dispatch import dispatch
from agentstore.errors import Conflict, NotFound, PermissionDenied, RateLimited, ValidationFailed
from chats import chat_selectors
from chats.models import Chat, ChatMessage, Run
from chats.services import MAX_INPUT_CHARS, run_stop, runs_active, runs_check_capacity

MAX_CONTENT_CHARS = MAX_INPUT_CHARS
MAX_TITLE_CHARS = 200
AUTO_TITLE_CHARS = 60
RATE_WINDOW_SECONDS = 60


@dataclass
class ChatTurn:
    """What a turn stored: the run and the two messages around it."""

    chat: Chat
    run: Run
    user_message: ChatMessage
    assistant_message: ChatMessage


def _limit(key: str, default: int) -> int:
    from integrations.system_settings import setting_get

    try:
        return max(1, int(setting_get(key, default)))
    except (TypeError, ValueError):
        return default


def max_sessions() -> int:
    return _limit("max_sessions_per_user", settings.MAX_SESSIONS_PER_USER)


def messages_per_minute() -> int:
    return _limit("chat_messages_per_minute", settings.CHAT_MESSAGES_PER_MINUTE)


# --- sessions ------------------------------------------------------------------------------


def _open_chats(user: User) -> QuerySet[Chat]:
    """The user's active chats (what ``max_sessions_per_user`` limits)."""
    return Chat.objects.filter(user=user, status=Chat.Status.ACTIVE)


def _users_count(rows: QuerySet) -> QuerySet:
    """``rows`` (all of one user's) counted, as a one-value queryset for ``fetch_scalars``
    (no row when there are none)."""
    return rows.values("user").annotate(n=Count("pk")).values_list("n")


def _check_session_limit(user: User, *, open_chats: int | None = None) -> None:
    """``open_chats``: the count, when the caller has read it already."""
    limit = max_sessions()
    if open_chats is None:
        open_chats = _open_chats(user).count()
    if open_chats >= limit:
        raise Conflict(
            _("You have %(n)d open chats, the most allowed. Archive or delete one first.")
            % {"n": limit},
            details={"limit": limit},
        )


def _clean_title(title: Any) -> str:
    title = " ".join(str(title or "").split())
    if not title:
        raise ValidationFailed(details={"title": [_("Enter a title.")]})
    if len(title) > MAX_TITLE_CHARS:
        raise ValidationFailed(
            details={"title": [_("At most %(n)d characters.") % {"n": MAX_TITLE_CHARS}]}
        )
    return title


def _install_decides(user: User, agent: Agent, is_test: bool) -> bool:
    """An ordinary chat with a store agent the user does not develop: the install alone
    decides (no role query)."""
    return not is_test and agent.is_in_store and agent.developer_id != user.pk


def chat_version_for(
    user: User,
    *,
    agent_id: Any,
    version_id: Any = None,
    is_test: bool = False,
    agent: Agent | None = None,
    installed: bool | None = None,
) -> tuple[Agent, AgentVersion]:
    """The agent and the version a new chat of ``user`` is pinned to.

    - Ordinary chats need the agent installed (or the user is one of its developers); they
      pin the current version, or an explicitly chosen approved/deprecated version.
    - Test chats (``is_test``) are for the agent's developers and collaborators only and
      may pin any version, drafts included (default: the newest one).

    ``agent``: the agent, already loaded by the caller (with ``current_version``);
    ``installed``: whether the user installed it, when the caller has read that already.
    """
    if agent is None:
        pk = parse_uuid(agent_id)
        agent = (
            Agent.objects.select_related("current_version").filter(pk=pk).first() if pk else None
        )
    if agent is None:
        raise NotFound()
    if installed is None and _install_decides(user, agent, is_test):
        # The common case — a user chatting with an installed store agent — needs the
        # install only; the developer role matters when there is none.
        installed = Install.objects.filter(user=user, agent=agent).exists()
    role = None if installed else agent_role(user, agent)
    if role is None:
        if not agent.is_in_store:
            raise NotFound()
        if is_test:
            raise PermissionDenied(_("Only the agent's developers can open test chats."))
        if installed is None:
            installed = Install.objects.filter(user=user, agent=agent).exists()
        if not installed:
            raise PermissionDenied(_("Install this agent to chat with it."))
    if agent.mode == Agent.Mode.TRIGGERS and not is_test:
        raise Conflict(_("This agent runs on triggers only; it has no chat."))
    versions = AgentVersion.objects.filter(agent=agent)
    if version_id not in (None, ""):
        version_pk = parse_uuid(version_id)
        version = versions.filter(pk=version_pk).first() if version_pk else None
        if version is None:
            raise ValidationFailed(
                details={"agent_version_id": [_("This version does not belong to the agent.")]}
            )
        if not is_test and version.status not in AgentVersion.STORE_VISIBLE:
            raise ValidationFailed(
                details={"agent_version_id": [_("Unreleased versions are for test chats only.")]}
            )
        return agent, version
    latest = versions.order_by("-created_at", "-id").first
    version = latest() if is_test else agent.current_version
    if version is None:
        if role is not None:
            raise Conflict(_("This agent has no approved version yet; open a test chat instead."))
        raise Conflict(_("This agent has no version to chat with yet."))
    return agent, version


def chat_create(
    user: User,
    *,
    agent_id: Any,
    agent_version_id: Any = None,
    is_test: bool = False,
    title: str = "",
    chat_id: uuid.UUID | None = None,
    request: Any = None,
    via: str = "",
    agent: Agent | None = None,
) -> Chat:
    """A new chat pinned to the agent's current version (no configuration needed).

    ``chat_id``: the id the client chose (an AG-UI thread id); a taken id raises
    ``IntegrityError`` (the insert's savepoint is rolled back, the caller's transaction
    stays usable). ``via`` names the interface in the audit detail (e.g. ``"ag-ui"``).
    ``agent``: the agent ``agent_id`` names, when the caller has loaded it already."""
    installed = open_chats = None
    if agent is not None and _install_decides(user, agent, is_test):
        # The install and the open chats in one statement (the API's fresh chats).
        install, open_chats = fetch_scalars(
            Install.objects.filter(user=user, agent=agent).values_list("pk"),
            _users_count(_open_chats(user)),
        )
        installed, open_chats = install is not None, open_chats or 0
    agent, version = chat_version_for(
        user,
        agent_id=agent_id,
        version_id=agent_version_id,
        is_test=is_test,
        agent=agent,
        installed=installed,
    )
    title = _clean_title(title) if str(title or "").strip() else ""
    _check_session_limit(user, open_chats=open_chats)
    detail = {"agent": str(agent.pk), "version": version.version, "is_test": is_test}
    if via:
        detail["via"] = via
    # A savepoint only where a failure is expected and survivable (a client-chosen id).
    with transaction.atomic(savepoint=chat_id is not None):
        chat = Chat.objects.create(
            id=chat_id or uuid.uuid4(),
            user=user,
            agent=agent,
            agent_version=version,
            title=title,
            is_test=is_test,
        )
        audit_record(user, action="chat.create", obj=chat, request=request, detail=detail)
    chat.agent, chat.agent_version = agent, version
    return chat


def chat_update(
    user: User,
    *,
    chat: Chat,
    title: str | None = None,
    status: str | None = None,
    request: Any = None,
) -> Chat:
    """Rename, archive (``status="archived"``) or restore (``status="active"``) a chat."""
    changes: dict[str, Any] = {}
    if title is not None:
        changes["title"] = _clean_title(title)
    if status is not None:
        if status not in (Chat.Status.ACTIVE, Chat.Status.ARCHIVED):
            raise ValidationFailed(
                details={
                    "status": [_("Choose 'active' or 'archived'; delete a chat to remove it.")]
                }
            )
        stored = Chat.objects.filter(pk=chat.pk).values_list("status", flat=True).first()
        if status != stored:
            if status == Chat.Status.ACTIVE:
                _check_session_limit(user)
            changes["status"] = status
    if not changes:
        return chat
    with transaction.atomic():
        updated = (
            Chat.objects.filter(pk=chat.pk, user=user)
            .exclude(status=Chat.Status.DELETED)
            .update(**changes, updated_at=timezone.now())
        )
        if not updated:
            raise NotFound()
        audit_record(user, action="chat.update", obj=chat, request=request, detail=changes)
    return chat_selectors.chat_for(user, chat.pk)


def chat_delete(user: User, *, chat: Chat, request: Any = None) -> None:
    """Soft delete: the chat disappears for its user; its answers still running stop."""
    with transaction.atomic():
        updated = (
            Chat.objects.filter(pk=chat.pk, user=user)
            .exclude(status=Chat.Status.DELETED)
            .update(status=Chat.Status.DELETED, updated_at=timezone.now())
        )
        if not updated:
            raise NotFound()
        audit_record(user, action="chat.delete", obj=chat, request=request)
    for run_id in Run.objects.filter(chat_id=chat.pk, status__in=Run.ACTIVE).values_list(
        "pk", flat=True
    ):
        run_stop(user, run_id=run_id, request=request)


def chat_upgrade_version(user: User, *, chat: Chat, request: Any = None) -> Chat:
    """Pin the chat to the agent's current version (an explicit user action; chats never
    move to a new version by themselves). Earlier answers keep the version that wrote them."""
    if chat.is_test:
        raise Conflict(_("A test chat stays on the version under test; open a new one."))
    agent = Agent.objects.select_related("current_version").get(pk=chat.agent_id)
    current = agent.current_version
    if current is None or not agent.is_in_store:
        raise Conflict(_("This agent has no released version to upgrade to."))
    if current.pk == chat.agent_version_id:
        raise Conflict(_("This chat already uses the latest version."))
    previous = chat.agent_version.version if chat.agent_version_id else ""
    with transaction.atomic():
        updated = (
            Chat.objects.filter(pk=chat.pk, user=user)
            .exclude(status=Chat.Status.DELETED)
            .update(agent_version=current, updated_at=timezone.now())
        )
        if not updated:
            raise NotFound()
        audit_record(
            user,
            action="chat.upgrade",
            obj=chat,
            request=request,
            detail={"from": previous, "to": current.version},
        )
    return chat_selectors.chat_for(user, chat.pk)


# --- turns ---------------------------------------------------------------------------------


def _check_content(content: Any) -> str:
    if not isinstance(content, str) or not content.strip():
        raise ValidationFailed(details={"content": [_("Write a message first.")]})
    if len(content) > MAX_CONTENT_CHARS:
        raise ValidationFailed(
            details={
                "content": [
                    _("Messages are limited to %(n)d characters (this one has %(m)d).")
                    % {"n": MAX_CONTENT_CHARS, "m": len(content)}
                ]
            }
        )
    return content


def _check_active(chat: Chat) -> None:
    if chat.status == Chat.Status.DELETED:
        raise NotFound()
    if chat.status == Chat.Status.ARCHIVED:
        raise Conflict(_("This chat is archived; restore it to send messages."))


def _busy_run(chat_id: Any) -> Any:
    """The chat's answer in progress (a ``values_list`` queryset of its id)."""
    return Run.objects.filter(chat_id=chat_id, status__in=Run.ACTIVE).values_list("pk")[:1]


def _refuse_busy(busy: Any) -> None:
    if busy is not None:
        raise Conflict(
            _("An answer is still being written in this chat; wait for it or stop it."),
            details={"run_id": str(busy)},
        )


def _rate_key(user: User, window: int) -> str:
    return f"chat:rate:{user.pk}:{window}"


def _count_in_window(key: str, ttl: int) -> int:
    """Add one to the counter ``key`` (created with ``ttl`` seconds to live): one round trip
    (a pipelined SET NX + INCR) on Redis, where every turn counts."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        full = backend.make_and_validate_key(key)
        pipe = backend._cache.get_client(full, write=True).pipeline(transaction=False)
        pipe.set(full, 0, ex=ttl, nx=True)
        pipe.incr(full)
        return int(pipe.execute()[1])
    cache.add(key, 0, ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, ttl)
        return 1


def _check_rate(user: User) -> None:
    """At most ``chat_messages_per_minute`` turns per user in a fixed one-minute window
    (counted in the cache: Redis in production, shared by every web process)."""
    limit = messages_per_minute()
    now = time.time()
    window = int(now // RATE_WINDOW_SECONDS)
    count = _count_in_window(_rate_key(user, window), RATE_WINDOW_SECONDS + 5)
    if count > limit:
        retry_after = (window + 1) * RATE_WINDOW_SECONDS - now
        raise RateLimited(
            _("You are sending messages too fast; try again in %(n)d s.")
            % {"n": max(1, round(retry_after))},
            retry_after=retry_after,
            details={"limit": limit},
        )


def _auto_title(content: str) -> str:
    first = next((line.strip() for line in content.splitlines() if line.strip()), "")
    first = " ".join(first.split())
    if len(first) > AUTO_TITLE_CHARS:
        first = first[: AUTO_TITLE_CHARS - 1].rstrip() + "…"
    return first


def _run_task() -> Any:
    from chats.tasks import run_execute_task

    return run_execute_task


def _preflight(
    user: User,
    chat: Chat,
    content: str | None,
    *,
    idle_check: bool = True,
    leaf: bool = False,
) -> tuple[str | None, Any]:
    """Every check that needs no lock, in the order a user would want them reported
    (``idle_check=False``: a chat just created, where no answer can be in progress).

    Its reads share one statement: the answer in progress, the user's active runs and,
    with ``leaf``, whether the chat's stored end of the active branch is still a leaf.
    Returns the checked content and the parent a new message continues (``leaf``)."""
    _check_active(chat)
    checked = _check_content(content) if content is not None else None
    stored = parse_uuid((chat.context or {}).get(chat_selectors.ACTIVE_LEAF_KEY)) if leaf else None
    queries = [
        _busy_run(chat.pk) if idle_check else Run.objects.none(),
        _users_count(runs_active(user)),
        # The stored leaf, if it is this chat's and nothing follows it (else: None/True).
        ChatMessage.objects.filter(chat_id=chat.pk, pk=stored)
        .annotate(followed=Exists(ChatMessage.objects.filter(parent_id=OuterRef("pk"))))
        .values_list("followed")
        if stored is not None
        else ChatMessage.objects.none(),
    ]
    busy, active, followed = fetch_scalars(*queries)
    if idle_check:
        _refuse_busy(busy)
    runs_check_capacity(user, active=active or 0)
    if not leaf:
        return checked, None
    if followed is False:
        return checked, stored
    # Nothing valid stored, or the branch goes on below it: walk the chat's tree.
    tree = chat_selectors.message_tree(chat.pk)
    return checked, chat_selectors.active_leaf(chat, tree)


#: The chat's own fields a turn reads again under the row lock.
_LOCKED_FIELDS = ("status", "agent_id", "agent_version_id", "is_test", "context", "title")


def _store_turn(
    user: User,
    *,
    chat: Chat,
    parent_id: Any,
    text: str,
    user_message: ChatMessage | None,
    action: str,
    request: Any,
    via: str,
    held: bool = False,
    run_id: Any = None,
) -> ChatTurn:
    """Store (user message,) run and placeholder in one transaction; dispatch on commit.

    ``held``: ``chat`` was created in the caller's still open transaction (nothing to lock
    or check again). Otherwise the chat's row is locked and read again, and ``chat`` takes
    its current values. ``run_id``: the new run's id when the caller chose it (to follow
    the run's events before it starts).

    The statements go out pipelined (``agentstore.db``): the lock and the check for an
    answer in progress travel together (the check runs after the lock is granted, with a
    fresh snapshot), then the INSERTs, the chat's UPDATE and the audit row; the commit
    follows — four round trips instead of eight."""
    now = timezone.now()
    # Inside the caller's transaction (``held``) a savepoint would buy nothing: a failure
    # here fails the caller's transaction anyway.
    with transaction.atomic(savepoint=not held), pipelined():
        if not held:
            # Only the chat's row: every chat of an agent joins the same agent and version
            # rows, and locking those would queue all its chats' turns.
            locked, busy = fetch_all(
                Chat.objects.select_for_update(of=("self",))
                .filter(pk=chat.pk, user=user)
                .values_list(*_LOCKED_FIELDS),
                _busy_run(chat.pk),
            )
            if not locked:
                raise NotFound()
            for name, value in zip(_LOCKED_FIELDS, locked[0], strict=True):
                setattr(chat, name, value)
            _check_active(chat)  # again, under the lock
            _refuse_busy(busy[0][0] if busy else None)
        # Ids chosen here, so the run and both messages are two INSERTs (the foreign keys
        # between them are checked at commit), not four statements.
        new_messages: list[ChatMessage] = []
        if user_message is None:
            user_message = ChatMessage(
                id=uuid.uuid4(),
                chat=chat,
                parent_id=parent_id,
                role=ChatMessage.Role.USER,
                content=text,
            )
            new_messages.append(user_message)
        added = len(new_messages) + 1
        source = Run.Source.TEST if chat.is_test else Run.Source.CHAT
        assistant_id = uuid.uuid4()
        run = Run.objects.create(
            **({"id": run_id} if run_id is not None else {}),
            user=user,
            agent_id=chat.agent_id,
            agent_version_id=chat.agent_version_id,
            chat=chat,
            user_message=user_message,
            assistant_message_id=assistant_id,
            source=source,
            input={"text": text, "context": {}},
        )
        assistant = ChatMessage(
            id=assistant_id,
            chat=chat,
            parent=user_message,
            role=ChatMessage.Role.ASSISTANT,
            content="",
            status=ChatMessage.Status.SENDING,
            run=run,
            agent_version_id=chat.agent_version_id,
        )
        new_messages.append(assistant)
        ChatMessage.objects.bulk_create(new_messages)
        run.assistant_message = assistant
        context = {**(chat.context or {}), chat_selectors.ACTIVE_LEAF_KEY: str(assistant.pk)}
        fields: dict[str, Any] = {
            "context": context,
            "message_count": F("message_count") + added,
            "last_message_at": now,
            "updated_at": now,
        }
        if not chat.title:
            fields["title"] = _auto_title(text)
        Chat.objects.filter(pk=chat.pk).update(**fields)
        audit_record(
            user,
            action=f"chat.{action}",
            obj=chat,
            request=request,
            via=via,
            detail={"run": str(run.pk), "message": str(user_message.pk)},
        )
        run_id, agent_id = str(run.pk), chat.agent_id
        transaction.on_commit(lambda: dispatch(_run_task(), run_id))
        # The usage counter after the commit, in a statement of its own: the install row is
        # shared by all of the user's chats with the agent, and holding its lock for the
        # whole turn would queue their turns (and API requests) behind each other.
        transaction.on_commit(lambda: install_touch(user, agent_id=agent_id), robust=True)
    chat.context = context
    chat.title = fields.get("title", chat.title)
    return ChatTurn(chat=chat, run=run, user_message=user_message, assistant_message=assistant)


def chat_message_post(
    user: User,
    *,
    chat: Chat,
    content: Any,
    parent_id: Any = None,
    request: Any = None,
    via: str = "",
    new_chat: bool = False,
    run_id: Any = None,
) -> ChatTurn:
    """Send a user message: it continues the active branch, or follows ``parent_id`` (an
    answer of this chat) to continue an earlier point of the conversation. ``run_id``: the
    id the answer's run gets (default: a new one).

    ``new_chat``: ``chat`` was created in the caller's transaction, which still holds it
    (``chat_create``, with its agent and version), and has only what the caller put in it
    (e.g. imported history ending at ``parent_id``). No answer can be in progress and the
    parent is the caller's own, so those reads are skipped — five queries of a request to
    the OpenAI-compatible endpoint."""
    follow = not new_chat and parent_id in (None, "")
    text, leaf = _preflight(user, chat, content, idle_check=not new_chat, leaf=follow)
    if new_chat:
        parent_pk = parent_id or None
    elif not follow:
        parent = chat_selectors.message_for(chat, parent_id)
        if parent.role == ChatMessage.Role.USER:
            raise ValidationFailed(
                details={"parent_id": [_("A message follows an answer, not another message.")]}
            )
        parent_pk = parent.pk
    else:
        parent_pk = leaf
    _check_rate(user)
    return _store_turn(
        user,
        chat=chat,
        parent_id=parent_pk,
        text=text,
        user_message=None,
        action="message",
        request=request,
        via=via,
        held=new_chat,
        run_id=run_id,
    )


def chat_regenerate(
    user: User, *, chat: Chat, message_id: Any, request: Any = None, via: str = ""
) -> ChatTurn:
    """Answer the same user message again: a new assistant sibling and a new run."""
    _preflight(user, chat, None)
    message = chat_selectors.message_for(chat, message_id)
    if message.role != ChatMessage.Role.ASSISTANT or message.parent_id is None:
        raise ValidationFailed(details={"message_id": [_("Only answers can be regenerated.")]})
    question = ChatMessage.objects.get(pk=message.parent_id)
    _check_rate(user)
    return _store_turn(
        user,
        chat=chat,
        parent_id=question.parent_id,
        text=question.content,
        user_message=question,
        action="regenerate",
        request=request,
        via=via,
    )


def chat_edit_message(
    user: User,
    *,
    chat: Chat,
    message_id: Any,
    content: Any,
    request: Any = None,
    via: str = "",
) -> ChatTurn:
    """Edit a user message: a new user message beside it (same parent), answered anew.
    The original and its answers stay as the other branch."""
    text, _leaf = _preflight(user, chat, content)
    message = chat_selectors.message_for(chat, message_id)
    if message.role != ChatMessage.Role.USER:
        raise ValidationFailed(details={"message_id": [_("Only your own messages can be edited.")]})
    _check_rate(user)
    return _store_turn(
        user,
        chat=chat,
        parent_id=message.parent_id,
        text=text,
        user_message=None,
        action="edit",
        request=request,
        via=via,
    )


def chat_branch_select(user: User, *, chat: Chat, message_id: Any) -> Any:
    """Show the branch through ``message_id`` (a sibling picked in the ``< 2/3 >``
    switcher): the active leaf becomes the newest leaf below it. Returns the leaf id.

    Not audited: it only changes which branch is displayed, like a scroll position.
    """
    message = chat_selectors.message_for(chat, message_id)
    tree = chat_selectors.message_tree(chat.pk)
    leaf = tree.latest_leaf(message.pk)
    with transaction.atomic():
        locked = Chat.objects.select_for_update().filter(pk=chat.pk, user=user).first()
        if locked is None:
            raise NotFound()
        context = {**(locked.context or {}), chat_selectors.ACTIVE_LEAF_KEY: str(leaf)}
        Chat.objects.filter(pk=chat.pk).update(context=context)
    chat.context = context
    return leaf


# --- export --------------------------------------------------------------------------------


@dataclass
class ChatExport:
    filename: str
    content_type: str
    body: bytes


EXPORT_FORMATS = ("md", "json")


def _version_of(message: ChatMessage) -> dict[str, str] | None:
    if message.role != ChatMessage.Role.ASSISTANT or message.agent_version_id is None:
        return None
    return {"id": str(message.agent_version_id), "version": message.agent_version.version}


def _export_name(chat: Chat, ext: str) -> str:
    from django.utils.text import slugify

    stem = slugify(chat.title or "")[:60] or "chat"
    return f"{stem}-{str(chat.pk)[:8]}.{ext}"


def _export_json(chat: Chat, messages: list[ChatMessage]) -> bytes:
    kept = ("tool_calls", "citations", "usage", "model", "error", "cancelled")
    document = {
        "format": "agentstore.chat/1",
        "exported_at": timezone.now().isoformat(),
        "chat": {
            "id": str(chat.pk),
            "title": chat.title,
            "status": chat.status,
            "is_test": chat.is_test,
            "agent": {"id": str(chat.agent_id), "name": chat.agent.name, "slug": chat.agent.slug},
            "agent_version": {
                "id": str(chat.agent_version_id),
                "version": chat.agent_version.version,
            },
            "created_at": chat.created_at.isoformat(),
        },
        "messages": [
            {
                "id": str(m.pk),
                "parent_id": str(m.parent_id) if m.parent_id else None,
                "role": m.role,
                "content": m.content,
                "content_type": m.content_type,
                "status": m.status,
                "message_type": m.message_type,
                "agent_version": _version_of(m),
                "run_id": str(m.run_id) if m.run_id else None,
                "metadata": {k: v for k, v in (m.metadata or {}).items() if k in kept},
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2).encode()


def _export_markdown(chat: Chat, messages: list[ChatMessage]) -> bytes:
    lines = [
        f"# {chat.title or _('Chat with %(agent)s') % {'agent': chat.agent.name}}",
        "",
        f"- {_('Agent')}: {chat.agent.name} (`{chat.agent.slug}`)",
        f"- {_('Version')}: {chat.agent_version.version}",
        f"- {_('Exported')}: {timezone.now().isoformat(timespec='seconds')}",
        "",
    ]
    for message in messages:
        when = message.created_at.isoformat(timespec="seconds")
        if message.role == ChatMessage.Role.USER:
            heading = _("You")
        elif message.role == ChatMessage.Role.ASSISTANT:
            version = _version_of(message)
            heading = chat.agent.name
            if version:
                heading += " · " + _("version %(v)s") % {"v": version["version"]}
        else:
            heading = message.get_role_display()
        lines += ["---", "", f"### {heading} · {when}", ""]
        content = message.content
        if message.status == ChatMessage.Status.FAILED:
            error = (message.metadata or {}).get("error") or {}
            content = content or ""
            content += (
                ("\n\n" if content else "")
                + "> "
                + _("Error: %(m)s") % {"m": error.get("message") or _("the answer failed.")}
            )
        elif (message.metadata or {}).get("cancelled"):
            content += "\n\n> " + _("(stopped)")
        lines += [content.rstrip(), ""]
    return ("\n".join(lines).rstrip() + "\n").encode()


def chat_export(user: User, *, chat: Chat, fmt: str) -> ChatExport:
    """The active branch of the chat as Markdown or JSON; each answer names the agent
    version that wrote it. A read: nothing is audited."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(details={"format": [_("Choose 'md' or 'json'.")]})
    messages = chat_selectors.branch_messages(chat)
    if fmt == "json":
        return ChatExport(
            _export_name(chat, "json"), "application/json", _export_json(chat, messages)
        )
    return ChatExport(
        _export_name(chat, "md"), "text/markdown; charset=utf-8", _export_markdown(chat, messages)
    )
