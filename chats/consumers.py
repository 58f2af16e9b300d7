"""The chat WebSocket (SPEC §5.3): ``/ws/chats/<chat_id>/``.

Connecting
    Session or token auth (``accounts.websocket_auth``); the Origin is checked by
    ``AllowedHostsOriginValidator`` in ``agentstore.asgi``. Without a user the socket is
    accepted and closed with code 4401; a chat that is not the user's (or deleted) closes
    with 4404. Otherwise the socket joins the chat's group (every tab of the chat sees
    every run) and says ``{type: "CONNECTED", chat_id, active_runs: [...]}``.

Client → server (JSON text frames; snake_case or camelCase keys; an optional ``id`` is
echoed in the answer)::

    {type: "send_message", content, parent_id?}      → MESSAGE_ACCEPTED
    {type: "regenerate", message_id}                  → MESSAGE_ACCEPTED
    {type: "edit_message", message_id, content}       → MESSAGE_ACCEPTED
    {type: "stop", run_id}                            → STOP_ACCEPTED
    {type: "resume", run_id, last_seq}                → stored events, then RESUMED
    {type: "ping"}                                    → PONG

Server → client: the runs' AG-UI events as stored (camelCase ``type`` + fields, ``seq``,
``runId``) plus ``run_id``; ``MESSAGE_ACCEPTED {run_id, user_message_id,
assistant_message_id, ...}``; errors ``{type: "ERROR", code, message, details?,
retry_after?}`` — after an error the socket stays open and usable.

No duplicates, no gaps
    The socket keeps, per run, the last ``seq`` it sent (its cursor) and never sends a
    ``seq`` at or below it. A run it has not seen starts at ``seq`` 1 (the socket was
    there when it started, or it started the run); a run already under way when the socket
    connected is followed only after the client ``resume``-s it (it knows what it has).
    ``resume`` replays the stored events above ``max(last_seq, cursor)``; events published
    meanwhile wait in the socket's channel (Channels handles one message at a time) and
    are dropped by the cursor when they were part of the replay. Because a run stores each
    event before it publishes it, an event is either in storage when the replay reads it
    or arrives live after it. A live event past ``cursor + 1`` (the channel layer dropped
    something) is preceded by the missing ones, read from storage.

Threads
    Every database call runs through ``database_sync_to_async`` on a bounded pool of
    threads of its own (``thread_sensitive=False``), never on the process-wide single
    "thread-sensitive" thread: one socket waiting on a slow query does not hold up the
    others, and the number of database connections stays bounded by the pool (a thread
    per socket would mean a connection per socket). Channels' per-message
    ``close_old_connections`` hop to that single thread is skipped for the same reason;
    each pooled call closes stale connections itself.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import connections
from django.utils import translation
from django.utils.translation import gettext as _

from agentstore.errors import BadRequest, DomainError, NotFound, ValidationFailed
from chats import chat_selectors, events, messaging
from chats.models import Run
from chats.services import run_stop

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CODE_TOO_LARGE = 41301
REPLAY_PAGE = 1000

_executor: ThreadPoolExecutor | None = None
_executor_threads: set[int] = set()
_executor_lock = threading.Lock()


def db_executor() -> ThreadPoolExecutor:
    """The sockets' database threads (``WS_DB_THREADS``, default 8)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=int(getattr(settings, "WS_DB_THREADS", 8)),
                thread_name_prefix="ws-db",
                initializer=lambda: _executor_threads.add(threading.get_ident()),
            )
        return _executor


def close_db_executor(timeout: float = 10.0) -> None:
    """Close every pooled thread's database connection and stop the pool (server shutdown,
    tests): each thread takes one closing task and waits at a barrier until all have one."""
    global _executor
    with _executor_lock:
        executor, _executor = _executor, None
        count = len(_executor_threads)
        _executor_threads.clear()
    if executor is None:
        return
    if count:
        barrier = threading.Barrier(count, timeout=timeout)

        def close() -> None:
            try:
                barrier.wait()
            finally:
                connections.close_all()

        futures = [executor.submit(close) for _ in range(count)]
        for future in futures:
            future.exception(timeout=timeout)
    executor.shutdown(wait=True)


# --- client messages ------------------------------------------------------------------------

ALIASES = {
    "runId": "run_id",
    "lastSeq": "last_seq",
    "last_event_id": "last_seq",
    "lastEventId": "last_seq",
    "messageId": "message_id",
    "parentId": "parent_id",
}
# field → (kind, required)
FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "send_message": {"content": ("text", True), "parent_id": ("id", False)},
    "regenerate": {"message_id": ("id", True)},
    "edit_message": {"message_id": ("id", True), "content": ("text", True)},
    "stop": {"run_id": ("id", True)},
    "resume": {"run_id": ("id", True), "last_seq": ("seq", True)},
    "ping": {},
}


def parse_client_message(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(type, fields)`` of a decoded client frame; raises BadRequest/ValidationFailed."""
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise BadRequest(
            _("Unknown message type %(type)s; expected one of: %(types)s.")
            % {"type": json.dumps(kind)[:60], "types": ", ".join(FIELDS)}
        )
    spec = FIELDS[kind]
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        if key in ("type", "id"):
            continue
        name = ALIASES.get(key, key)
        if name not in spec:
            errors[key] = [_("Unknown field.")]
            continue
        values[name] = value
    for name, (field_kind, required) in spec.items():
        value = values.get(name)
        if value is None:
            if required:
                errors[name] = [_("This field is required.")]
            continue
        if field_kind in ("text", "id") and not isinstance(value, str):
            errors[name] = [_("Must be a string.")]
        elif field_kind == "seq" and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            errors[name] = [_("Must be a whole number, 0 or more.")]
    if errors:
        raise ValidationFailed(details=errors)
    return kind, values


def error_frame(exc: DomainError, ref: Any = None) -> dict[str, Any]:
    message = exc.message
    details = exc.details
    if isinstance(exc, ValidationFailed) and isinstance(details, dict):
        firsts = [
            f"{name}: {problems[0]}"
            for name, problems in details.items()
            if isinstance(problems, list) and problems
        ]
        if firsts:
            message = "; ".join(firsts)
    frame: dict[str, Any] = {"type": "ERROR", "code": exc.code, "message": message}
    if details is not None:
        frame["details"] = details
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        frame["retry_after"] = retry_after
    if ref is not None:
        frame["id"] = ref
    return frame


def _ref(data: Any) -> Any:
    ref = data.get("id") if isinstance(data, dict) else None
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        return None
    return ref if not isinstance(ref, str) else ref[:100]


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """One socket on one chat (see the module docstring)."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first runs close_old_connections on the process-wide
        # thread-sensitive thread, for every message (each streamed event included). Our
        # database calls clean up in their own pooled threads instead.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.chat_id = str(self.scope["url_route"]["kwargs"]["chat_id"])
        self.cursor: dict[str, int] = {}
        self.group: str | None = None
        self.language = getattr(self.user, "language", "") or settings.LANGUAGE_CODE
        if not getattr(self.user, "is_authenticated", False):
            # Accept first: a close before the handshake loses its code (HTTP 403).
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Join before reading the active runs: a run that starts in between is then either
        # listed in CONNECTED or streamed from its first event.
        self.group = events.chat_group(self.chat_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        try:
            runs = await self._db(self._load_chat)
        except NotFound:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.accept()
        await self.send_frame(
            {
                "type": "CONNECTED",
                "chat_id": self.chat_id,
                "active_runs": runs,
                "max_message_bytes": self.max_message_bytes,
            }
        )

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    @property
    def max_message_bytes(self) -> int:
        return int(settings.WS_MAX_MESSAGE_BYTES)

    # --- sending --------------------------------------------------------------------------

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=await self.encode_json(frame))

    async def send_error(self, exc: DomainError, ref: Any = None) -> None:
        await self.send_frame(error_frame(exc, ref))

    async def _send_event(self, event: dict[str, Any]) -> None:
        run_id = event["runId"]
        self.cursor[run_id] = event["seq"]
        await self.send_frame({**event, "run_id": run_id})

    # --- database -------------------------------------------------------------------------

    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        language = self.language

        def call() -> Any:
            with translation.override(language):
                return fn(*args, **kwargs)

        return await database_sync_to_async(call, thread_sensitive=False, executor=db_executor())()

    def _chat(self) -> Any:
        return chat_selectors.chat_for(self.user, self.chat_id)

    def _load_chat(self) -> list[dict[str, Any]]:
        return chat_selectors.active_runs(self._chat())

    # --- client frames --------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        with translation.override(self.language):
            if text_data is None:
                await self.send_error(BadRequest(_("Send JSON text frames, not binary ones.")))
                return
            limit = self.max_message_bytes
            if len(text_data) > limit or len(text_data.encode("utf-8")) > limit:
                await self.send_error(
                    DomainError(
                        _("The message is larger than %(n)d bytes.") % {"n": limit},
                        code=CODE_TOO_LARGE,
                        details={"max_bytes": limit},
                    )
                )
                return
            try:
                data = json.loads(text_data)
            except ValueError:
                await self.send_error(BadRequest(_("The frame is not valid JSON.")))
                return
            if not isinstance(data, dict):
                await self.send_error(BadRequest(_("Send a JSON object with a 'type'.")))
                return
        ref = _ref(data)
        try:
            with translation.override(self.language):
                kind, fields = parse_client_message(data)
            await getattr(self, f"on_{kind}")(ref=ref, **fields)
        except DomainError as exc:
            await self.send_error(exc, ref)
        except Exception:
            logger.exception("chat socket %s: handling %s failed", self.chat_id, data.get("type"))
            with translation.override(self.language):
                await self.send_error(DomainError(_("Something went wrong; try again.")), ref)

    async def _accepted(self, turn: messaging.ChatTurn, action: str, ref: Any) -> None:
        run_id = str(turn.run.pk)
        # From seq 1: the run's events are queued in our channel behind this handler.
        self.cursor.setdefault(run_id, 0)
        frame = {
            "type": "MESSAGE_ACCEPTED",
            "action": action,
            "chat_id": self.chat_id,
            "run_id": run_id,
            "user_message_id": str(turn.user_message.pk),
            "assistant_message_id": str(turn.assistant_message.pk),
            "parent_id": str(turn.user_message.parent_id) if turn.user_message.parent_id else None,
            "agent_version_id": str(turn.run.agent_version_id),
            "title": turn.chat.title,
        }
        if ref is not None:
            frame["id"] = ref
        await self.send_frame(frame)

    async def on_send_message(self, *, ref: Any, content: str, parent_id: str | None = None):
        turn = await self._db(
            lambda: messaging.chat_message_post(
                self.user,
                chat=chat_selectors.chat_row_for(self.user, self.chat_id),
                content=content,
                parent_id=parent_id,
                via="websocket",
            )
        )
        await self._accepted(turn, "send", ref)

    async def on_regenerate(self, *, ref: Any, message_id: str) -> None:
        turn = await self._db(
            lambda: messaging.chat_regenerate(
                self.user, chat=self._chat(), message_id=message_id, via="websocket"
            )
        )
        await self._accepted(turn, "regenerate", ref)

    async def on_edit_message(self, *, ref: Any, message_id: str, content: str) -> None:
        turn = await self._db(
            lambda: messaging.chat_edit_message(
                self.user,
                chat=self._chat(),
                message_id=message_id,
                content=content,
                via="websocket",
            )
        )
        await self._accepted(turn, "edit", ref)

    def _stop(self, run_id: str) -> Run:
        run = chat_selectors.chat_run_for(self.user, self._chat(), run_id)
        return run_stop(self.user, run_id=run.pk)

    async def on_stop(self, *, ref: Any, run_id: str) -> None:
        run = await self._db(self._stop, run_id)
        frame = {"type": "STOP_ACCEPTED", "run_id": str(run.pk), "status": run.status}
        if ref is not None:
            frame["id"] = ref
        await self.send_frame(frame)

    async def on_ping(self, *, ref: Any) -> None:
        frame: dict[str, Any] = {"type": "PONG"}
        if ref is not None:
            frame["id"] = ref
        await self.send_frame(frame)

    # --- replay ---------------------------------------------------------------------------

    def _resume_run(self, run_id: str) -> str:
        return str(chat_selectors.chat_run_for(self.user, self._chat(), run_id).pk)

    def _replay_page(self, run_id: str, after: int) -> tuple[list[dict[str, Any]], bool, str]:
        page = chat_selectors.stored_events(run_id, after=after, limit=REPLAY_PAGE)
        if len(page) == REPLAY_PAGE:
            return page, False, ""
        status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
        return page, True, status or ""

    async def on_resume(self, *, ref: Any, run_id: str, last_seq: int) -> None:
        run_id = await self._db(self._resume_run, run_id)
        after = max(last_seq, self.cursor.get(run_id, 0))
        self.cursor[run_id] = after
        done, status = False, ""
        while not done:
            page, done, status = await self._db(self._replay_page, run_id, after)
            for event in page:
                await self._send_event(event)
            if page:
                after = page[-1]["seq"]
        frame = {
            "type": "RESUMED",
            "run_id": run_id,
            "last_seq": self.cursor[run_id],
            "status": status,
        }
        if ref is not None:
            frame["id"] = ref
        await self.send_frame(frame)

    # --- live events (channel layer) --------------------------------------------------------

    async def event_deliver(self, message: dict[str, Any]) -> None:
        if self.group is None:
            return  # refused or closing: nothing of this chat leaves the server
        event = message["event"]
        run_id = event.get("runId")
        seq = event.get("seq")
        if not isinstance(run_id, str) or not isinstance(seq, int):
            await self.send_frame(event)  # not a run event (e.g. a chat notice)
            return
        cursor = self.cursor.get(run_id)
        if cursor is None:
            if seq != 1:
                return  # under way before we joined: the client resumes it from storage
            cursor = 0
        if seq <= cursor:
            return  # sent already (replayed)
        if seq > cursor + 1:
            missing = await self._db(chat_selectors.stored_events, run_id, after=cursor, before=seq)
            for stored in missing:
                await self._send_event(stored)
        await self._send_event(event)
