"""AG-UI over SSE (SPEC §5.3, seed 004 §13): any AG-UI client can chat with a store agent.

``POST /api/v1/agent/run``
    Body: AG-UI ``RunAgentInput`` in its wire format (camelCase: ``threadId``, ``runId``,
    ``messages``, ``tools``, ``context``, ``state``, ``forwardedProps``) or in the snake_case
    spelling of seed 004 (``thread_id``, ``run_id``, ``forwarded_props``).

    - ``threadId`` is the chat. A thread the user already has continues that chat; an
      unknown one starts a new chat *with that id* (so the client's next request, which
      sends the same ``threadId``, continues it). A ``threadId`` that is not a UUID is
      mapped to a stable UUID per user (``uuid5``); a missing one starts a fresh chat.
      A new chat needs ``forwardedProps.agent_id`` (or ``agentId`` / ``agent``): the
      agent's UUID or slug; the user must have installed it or be one of its developers.
      ``forwardedProps.agent_version_id`` optionally pins an approved version.
    - The last message with role ``user`` is the new message (its text parts); the rest of
      ``messages`` is ignored because the chat's stored history is authoritative (AG-UI
      clients send the whole conversation every time). Client-side ``tools``, ``context``
      and ``state`` are not used by store agents.
    - The response is ``text/event-stream``: the run's AG-UI events encoded by
      ``ag_ui.encoder.EventEncoder`` (``data: {...}\\n\\n``), each with the run's ``seq``,
      from ``RUN_STARTED`` to the one terminal event (``RUN_FINISHED`` or ``RUN_ERROR``),
      then the response ends. The run id is the server's (``RUN_STARTED.runId``, also the
      ``X-AgentStore-Run-Id`` header); the client's ``runId`` is not reused. Quiet periods
      (a long tool call) carry SSE comments so proxies keep the stream open.
    - Errors found before streaming starts are the JSON envelope with the matching HTTP
      status (40001 malformed, 40002 validation, 40101/40102 auth, 40301 not installed,
      40401 unknown agent or thread, 40901 archived chat or an answer still running, 42901
      limits with ``retry_after``); errors after that are a ``RUN_ERROR`` event.
    - A client that disconnects does not stop the run (the answer is stored in the chat,
      as with a dropped WebSocket); stopping is explicit:

``POST /api/v1/agent/run/{run_id}/stop``
    Stops the run (idempotent); the stream still open on it ends with ``RUN_FINISHED``
    (outcome ``cancelled``). Returns the run (enveloped).

Auth: the session (with CSRF), a JWT access token or a personal API key (``sk-…``).
The streaming view is an async Django view: an open stream holds no thread.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from ag_ui.core import Event as AgUiEvent
from ag_ui.core import RunAgentInput, RunErrorEvent
from ag_ui.encoder import EventEncoder
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication, JWTAuthentication
from accounts.models import User
from agents.models import Agent
from agents.selectors import parse_uuid
from agentstore.api.envelope import error_body
from agentstore.db import pipelined
from agentstore.errors import (
    AuthenticationFailed,
    BadRequest,
    DomainError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from chats import chat_selectors, messaging, services, streaming
from chats.api.runs import RunSerializer
from chats.models import Chat

logger = logging.getLogger(__name__)

AGENT_KEYS = ("agent_id", "agentId", "agent")
VERSION_KEYS = ("agent_version_id", "agentVersionId")
# Thread ids that are not UUIDs map to uuid5(namespace, "<user id>:<thread id>").
THREAD_NAMESPACE = uuid.UUID("7b1f9a52-4c3e-4d55-9a53-0c8f1e6b2d10")
# An SSE comment after this many quiet seconds (and a look at storage, see streaming).
KEEPALIVE_SECONDS = 5.0
CODE_TOO_LARGE = 41301
CODE_METHOD_NOT_ALLOWED = 40501

_EVENT_ADAPTER: TypeAdapter = TypeAdapter(AgUiEvent)


# --- shared by the HTTP interfaces that are not DRF views ---------------------------------


def authenticate(request: HttpRequest, *, session: bool = True) -> Request:
    """The request wrapped by DRF with its user authenticated by the project's own
    authenticators (API key, JWT, and the session with its CSRF check when ``session``).
    Raises 40101 without credentials and 40102/40301 for bad ones. Sync (database)."""
    authenticators: list[Any] = [ApiKeyAuthentication(), JWTAuthentication()]
    if session:
        authenticators.append(SessionAuthentication())
    drf_request = Request(request, authenticators=authenticators)
    try:
        user = drf_request.user
    except drf_exceptions.AuthenticationFailed as exc:
        raise AuthenticationFailed(str(exc.detail), code=40102) from None
    except drf_exceptions.PermissionDenied as exc:  # the session without its CSRF token
        raise PermissionDenied(str(exc.detail)) from None
    if not getattr(user, "is_authenticated", False):
        raise AuthenticationFailed(_("Authentication credentials were not provided."))
    return drf_request


def error_response(exc: DomainError) -> JsonResponse:
    """A domain error as the SPEC §10 envelope (what DRF's handler would answer)."""
    response = JsonResponse(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    if exc.http_status == 401:
        response["WWW-Authenticate"] = "Bearer"
    return response


def read_json_object(request: HttpRequest) -> dict[str, Any]:
    try:
        body = request.body
    except RequestDataTooBig:
        raise DomainError(_("The request body is too large."), code=CODE_TOO_LARGE) from None
    try:
        data = json.loads(body or b"")
    except ValueError as exc:
        raise BadRequest(_("Malformed request body: %(detail)s") % {"detail": exc}) from None
    if not isinstance(data, dict):
        raise BadRequest(_("Malformed request body: expected a JSON object."))
    return data


# --- RunAgentInput ----------------------------------------------------------------------------


def parse_run_input(data: dict[str, Any]) -> RunAgentInput:
    """Validate ``data`` as a RunAgentInput; camelCase and snake_case keys both work. A
    missing ``threadId`` means a new thread, a missing ``runId`` is filled in."""
    data = dict(data)
    if "threadId" not in data and "thread_id" not in data:
        data["threadId"] = ""
    if "runId" not in data and "run_id" not in data:
        data["runId"] = ""
    try:
        return RunAgentInput.model_validate(data)
    except PydanticValidationError as exc:
        details: dict[str, list[str]] = {}
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ())) or "body"
            details.setdefault(where, []).append(str(error.get("msg", "")))
        raise ValidationFailed(details=details) from None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    pieces = []
    for part in content or []:
        text = getattr(part, "text", None)
        if getattr(part, "type", None) == "text" and isinstance(text, str):
            pieces.append(text)
    return "\n".join(pieces)


def last_user_text(run_input: RunAgentInput) -> str:
    for message in reversed(run_input.messages or []):
        if getattr(message, "role", None) == "user":
            text = _text_of(getattr(message, "content", None))
            if not text.strip():
                raise ValidationFailed(details={"messages": [_("The last user message is empty.")]})
            return text
    raise ValidationFailed(details={"messages": [_("Send at least one message with role 'user'.")]})


def _prop(props: Any, keys: tuple[str, ...]) -> str:
    if not isinstance(props, dict):
        return ""
    for key in keys:
        value = props.get(key)
        if isinstance(value, str | uuid.UUID) and str(value).strip():
            return str(value).strip()
    return ""


def thread_chat_id(user: User, thread_id: str) -> uuid.UUID:
    """The chat id of an AG-UI thread: the thread id itself when it is a UUID, else a UUID
    derived from it and the user (the same string always names the same chat)."""
    thread_id = (thread_id or "").strip()
    if not thread_id:
        return uuid.uuid4()
    return parse_uuid(thread_id) or uuid.uuid5(THREAD_NAMESPACE, f"{user.pk}:{thread_id}")


def agent_id_for_ref(ref: str) -> uuid.UUID:
    """An agent's id from its UUID or slug (access is checked when the chat is created)."""
    pk = parse_uuid(ref)
    if pk is not None:
        return pk
    found = Agent.objects.filter(slug=ref).values_list("pk", flat=True).first()
    if found is None:
        raise NotFound(_("There is no agent %(ref)s.") % {"ref": ref[:100]})
    return found


def thread_chat_create(
    user: User,
    *,
    chat_id: uuid.UUID,
    agent_id: Any,
    agent_version_id: Any = None,
    request: Any = None,
) -> Chat:
    """``messaging.chat_create`` with the id the AG-UI client chose for its thread (access
    to the agent and its version, the session limit; audited)."""
    try:
        return messaging.chat_create(
            user,
            agent_id=agent_id,
            agent_version_id=agent_version_id,
            chat_id=chat_id,
            request=request,
            via="ag-ui",
        )
    except IntegrityError:
        # The same new thread in two concurrent requests: the other one created it.
        return chat_selectors.chat_for(user, chat_id)


def thread_open(user: User, run_input: RunAgentInput, *, request: Any = None) -> Chat:
    """The chat of ``run_input.thread_id``: the user's existing chat, or a new one."""
    chat_id = thread_chat_id(user, run_input.thread_id)
    owner = Chat.objects.filter(pk=chat_id).values_list("user_id", flat=True).first()
    if owner is not None:
        # Someone else's thread (or a deleted chat) is simply not found.
        return chat_selectors.chat_for(user, chat_id)
    props = run_input.forwarded_props
    agent_ref = _prop(props, AGENT_KEYS)
    if not agent_ref:
        raise ValidationFailed(
            details={
                "forwardedProps.agent_id": [
                    _("Name the agent (its id or slug) to start a new thread.")
                ]
            }
        )
    return thread_chat_create(
        user,
        chat_id=chat_id,
        agent_id=agent_id_for_ref(agent_ref),
        agent_version_id=_prop(props, VERSION_KEYS) or None,
        request=request,
    )


@dataclass
class StartedRun:
    run_id: str
    chat_id: str


def start_run(request: HttpRequest, *, run_id: Any = None) -> StartedRun:
    """Authenticate, validate, open the thread and post the message (sync, one hop); the
    run gets ``run_id`` when given."""
    drf_request = authenticate(request)
    run_input = parse_run_input(read_json_object(request))
    text = last_user_text(run_input)
    user = drf_request.user
    # One transaction: a refused message (a limit) leaves no new empty chat behind;
    # pipelined like the OpenAI-compatible endpoint's (agentstore.db).
    with transaction.atomic(), pipelined():
        chat = thread_open(user, run_input, request=drf_request)
        turn = messaging.chat_message_post(
            user, chat=chat, content=text, request=drf_request, via="ag-ui", run_id=run_id
        )
    return StartedRun(run_id=str(turn.run.pk), chat_id=str(chat.pk))


# --- the stream -------------------------------------------------------------------------------


def encode_event(encoder: EventEncoder, event: dict[str, Any]) -> str:
    """One stored event as SSE through the AG-UI encoder (``seq``/``runId`` kept)."""
    try:
        return encoder.encode(_EVENT_ADAPTER.validate_python(event))
    except PydanticValidationError:
        # Never drop an event because this SDK version is stricter than its producer.
        return f"data: {json.dumps(event, separators=(',', ':'), ensure_ascii=False)}\n\n"


def run_error(encoder: EventEncoder, run_id: str, code: str, message: str) -> str:
    event = RunErrorEvent.model_validate(
        {"type": "RUN_ERROR", "message": message, "code": code, "runId": run_id}
    )
    return encoder.encode(event)


async def sse_events(
    run_id: str, encoder: EventEncoder, subscription: streaming.Subscription | None = None
) -> Any:
    try:
        async for event in streaming.follow_run(
            run_id,
            idle=True,
            idle_poll=KEEPALIVE_SECONDS,
            fresh=True,
            subscription=subscription,
        ):
            if event is streaming.IDLE:
                yield ": keep-alive\n\n"
                continue
            yield encode_event(encoder, event)
    except streaming.FollowTimeout:
        yield run_error(
            encoder, run_id, "stream_timeout", _("The answer did not finish in time; stopped.")
        )
    except Exception:
        logger.exception("AG-UI stream of run %s failed", run_id)
        yield run_error(
            encoder, run_id, "internal_error", _("The stream failed; the answer is in the chat.")
        )


@csrf_exempt  # token clients send no CSRF token; session clients are checked by DRF's rule
async def agent_run(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = error_response(
            DomainError(_("Use POST."), code=CODE_METHOD_NOT_ALLOWED)  # 405
        )
        response["Allow"] = "POST"
        return response
    try:
        # Subscribed to the run's events while it is stored and dispatched.
        started, subscription = await streaming.start_subscribed(start_run, request)
    except DomainError as exc:
        return error_response(exc)
    encoder = EventEncoder(accept=request.headers.get("Accept"))
    response = StreamingHttpResponse(
        streaming.SubscribedStream(sse_events(started.run_id, encoder, subscription), subscription),
        content_type=encoder.get_content_type(),
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events through as they come
    response["X-AgentStore-Run-Id"] = started.run_id
    response["X-AgentStore-Thread-Id"] = started.chat_id
    return response


class AgentRunStopView(APIView):
    """``POST /api/v1/agent/run/{run_id}/stop``: stop a run (idempotent)."""

    @extend_schema(
        request=None,
        responses=RunSerializer,
        summary="Stop an AG-UI run",
        description=(
            "Stops the run (idempotent); a stream open on it ends with `RUN_FINISHED` "
            "(outcome `cancelled`). Returns the run."
        ),
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = services.run_stop(request.user, run_id=run_id, request=request)
        return Response(RunSerializer(run).data)
