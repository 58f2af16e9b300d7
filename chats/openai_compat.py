"""OpenAI-compatible API (SPEC §5.3): any OpenAI SDK can use a store agent.

Mounted at ``/v1/`` (``chats.openai_urls``). Responses have exactly OpenAI's shapes — no
envelope — and errors are OpenAI error objects ``{"error": {"message", "type", "param",
"code"}}``, so the official clients raise their usual exceptions.

Auth: ``Authorization: Bearer sk-…`` (a personal API key; a JWT access token works too).

``GET /v1/models`` and ``GET /v1/models/{model}``
    The user's installed agents that can chat: ``{"id": <slug>, "object": "model",
    "created", "owned_by": <developer's username>}``.

``POST /v1/chat/completions``
    ``model`` is an agent's slug (its current version) or ``slug@version`` (that approved
    version). The agent answers with its own configuration: its model, prompt, tools and
    knowledge; sampling parameters of the request (``temperature``, ``max_tokens``,
    ``tools``, …) are accepted and ignored, and ``n`` must be 1.

    Conversation state — OpenAI's API is stateless, so is this one by default:

    - Every request opens a fresh chat pinned to the agent version: the earlier
      ``user``/``assistant`` messages are stored as its history, the last ``user`` message
      is the new message (``system``/``developer``/``tool`` messages are left out: the
      agent's own instructions apply). The chat is archived once the answer has been
      streamed (or the client went away), so API traffic neither fills the user's chat list
      nor uses up their open-chat allowance; it stays readable and exportable among the
      archived chats. (Archiving after the answer keeps it off the time to first token.)
    - ``X-AgentStore-Chat-Id: new`` opens the fresh chat *and keeps it open*;
      ``X-AgentStore-Chat-Id: <chat id>`` continues one of the user's open chats with the
      same agent (its stored history is used; earlier messages of the request are ignored).
      Every response says which chat it used in ``X-AgentStore-Chat-Id`` (and the run in
      ``X-AgentStore-Run-Id``).

    ``stream: false`` → a ``chat.completion`` with the whole answer and ``usage``.
    ``stream: true`` → ``text/event-stream`` of ``chat.completion.chunk`` objects: a first
    chunk with ``delta.role``, one per batch of streamed text with ``delta.content`` (the
    runtime batches tokens every ~40 ms), a last one with ``finish_reason``, a usage chunk
    (``choices: []``) when ``stream_options.include_usage``, then ``data: [DONE]``. A run
    that fails after the stream started sends ``data: {"error": {...}}``.

    Failed runs answer 500 ``server_error`` with ``x-should-retry: false`` (the SDKs would
    otherwise retry and run the agent again); limits answer 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from accounts.audit import audit_record
from accounts.models import User
from agents.models import Agent, AgentVersion
from agents.selectors import installs_for, parse_uuid, store_agents
from agentstore.db import pipelined
from agentstore.errors import (
    AuthenticationFailed,
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationFailed,
)
from chats import chat_selectors, messaging, streaming
from chats.api.agui import authenticate, read_json_object
from chats.models import Chat, ChatMessage

logger = logging.getLogger(__name__)

CHAT_HEADER = "X-AgentStore-Chat-Id"
RUN_HEADER = "X-AgentStore-Run-Id"
NEW_CHAT = "new"
KEEPALIVE_SECONDS = 5.0
HISTORY_ROLES = {"user", "assistant"}
KNOWN_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MAX_MESSAGES = 500


# --- errors -----------------------------------------------------------------------------------


class OpenAIError(Exception):
    """An error answered as an OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        _("The model '%(model)s' does not exist or you do not have access to it.")
        % {"model": model[:200]},
        code="model_not_found",
        param="model",
    )


def from_domain(exc: DomainError) -> OpenAIError:
    """A domain error of the services in OpenAI's terms."""
    status = exc.http_status
    if isinstance(exc, AuthenticationFailed):
        code = "invalid_api_key" if exc.code == 40102 else None
        return OpenAIError(401, exc.message, code=code, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, RateLimited):
        return OpenAIError(
            429,
            exc.message,
            type_="requests",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, ValidationFailed):
        details = exc.details if isinstance(exc.details, dict) else {}
        param, problems = next(iter(details.items()), (None, [exc.message]))
        first = problems[0] if isinstance(problems, list) and problems else exc.message
        return OpenAIError(400, str(first), param=param)
    if isinstance(exc, PermissionDenied):
        return OpenAIError(403, exc.message, type_="permission_error", code="permission_denied")
    if isinstance(exc, NotFound):
        return OpenAIError(404, exc.message, code="not_found")
    if isinstance(exc, Conflict):
        return OpenAIError(409, exc.message, code="conflict")
    if status < 500:
        return OpenAIError(status, exc.message)
    return OpenAIError(status, exc.message, type_="server_error")


def run_failed(result: streaming.RunResult) -> OpenAIError:
    return OpenAIError(
        500,
        result.error_message or _("The agent failed to answer."),
        type_="server_error",
        code=result.error_code or "run_failed",
        # The SDKs retry 5xx answers; that would run the agent again.
        headers={"x-should-retry": "false", RUN_HEADER: result.run_id},
    )


def _user(request: HttpRequest) -> Any:
    """The DRF-wrapped request of an API key or JWT holder (no session, no CSRF)."""
    try:
        return authenticate(request, session=False)
    except AuthenticationFailed as exc:
        if exc.code == 40101:
            raise OpenAIError(
                401,
                _(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer sk-…' "
                    "(create one in your account settings)."
                ),
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
        raise from_domain(exc) from None


# --- models -----------------------------------------------------------------------------------


def model_object(agent: Agent, model_id: str | None = None) -> dict[str, Any]:
    created = agent.published_at or agent.created_at
    return {
        "id": model_id or agent.slug,
        "object": "model",
        "created": int(created.timestamp()),
        "owned_by": agent.developer.username,
    }


def models_for(user: User) -> list[dict[str, Any]]:
    """The user's installed agents that can chat, as OpenAI model objects."""
    in_store = store_agents().filter(mode=Agent.Mode.CHAT).values("pk")
    installs = installs_for(user).filter(agent__in=in_store).order_by("agent__slug")
    return [model_object(install.agent) for install in installs]


def split_model(model: str) -> tuple[str, str | None]:
    slug, at, version = model.partition("@")
    return slug, (version if at else None)


def resolve_model(user: User, model: str) -> tuple[Agent, AgentVersion | None]:
    """The agent named by ``model`` (``slug`` or ``slug@version``) and the pinned version
    (None: the current one). Access (installed, or one of its developers) is checked when
    the chat is created; an unknown name or version is ``model_not_found``."""
    slug, version_label = split_model(model.strip())
    agent = (
        Agent.objects.select_related("developer", "current_version").filter(slug=slug).first()
        if slug
        else None
    )
    if agent is None:
        raise model_not_found(model)
    version = None
    if version_label is not None:
        version = AgentVersion.objects.filter(
            agent=agent, version=version_label, status__in=AgentVersion.STORE_VISIBLE
        ).first()
        if version is None:
            raise model_not_found(model)
    return agent, version


def _list_models(request: HttpRequest) -> dict[str, Any]:
    user = _user(request).user
    return {"object": "list", "data": models_for(user)}


def _get_model(request: HttpRequest, model: str) -> dict[str, Any]:
    user = _user(request).user
    slug, version_label = split_model(model)
    for item in models_for(user):
        if item["id"] != slug:
            continue
        if version_label is None:
            return item
        agent, _version = resolve_model(user, model)
        return model_object(agent, model)
    raise model_not_found(model)


@csrf_exempt
async def models_list(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return OpenAIError(405, _("Use GET.")).response()
    try:
        return JsonResponse(await streaming.db(_list_models, request))
    except OpenAIError as exc:
        return exc.response()


@csrf_exempt
async def model_detail(request: HttpRequest, model: str) -> HttpResponse:
    if request.method != "GET":
        return OpenAIError(405, _("Use GET.")).response()
    try:
        return JsonResponse(await streaming.db(_get_model, request, model))
    except OpenAIError as exc:
        return exc.response()


# --- the request ------------------------------------------------------------------------------


@dataclass
class CompletionRequest:
    model: str
    text: str  # the new user message
    history: list[tuple[str, str]]  # earlier (role, text), roles user/assistant
    stream: bool
    include_usage: bool
    chat_ref: str  # "" (a fresh chat), "new" (a fresh chat kept open) or a chat id


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if not isinstance(part, dict) or "type" not in part:
                raise OpenAIError(400, _("Each content part needs a 'type'."), param=where)
            if part["type"] in ("text", "input_text") and isinstance(part.get("text"), str):
                pieces.append(part["text"])
        return "\n".join(pieces)
    raise OpenAIError(400, _("'content' must be a string or a list of parts."), param=where)


def _merge(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Consecutive messages of one role become one (a chat alternates)."""
    merged: list[tuple[str, str]] = []
    for role, text in turns:
        if not text.strip():
            continue
        if merged and merged[-1][0] == role:
            merged[-1] = (role, f"{merged[-1][1]}\n\n{text}")
        else:
            merged.append((role, text))
    return merged


def parse_completion(data: dict[str, Any], chat_ref: str) -> CompletionRequest:
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise OpenAIError(400, _("You must provide a model parameter."), param="model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIError(400, _("'messages' must be a non-empty array."), param="messages")
    if len(messages) > MAX_MESSAGES:
        raise OpenAIError(400, _("At most %(n)d messages.") % {"n": MAX_MESSAGES}, param="messages")
    n = data.get("n")
    if n is not None and n != 1:
        raise OpenAIError(400, _("Only n=1 is supported."), param="n")
    stream = data.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise OpenAIError(400, _("'stream' must be a boolean."), param="stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise OpenAIError(400, _("'stream_options' must be an object."), param="stream_options")
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        where = f"messages.[{index}]"
        if not isinstance(message, dict) or message.get("role") not in KNOWN_ROLES:
            raise OpenAIError(
                400, _("Each message needs a role: user, assistant, system…"), param=where
            )
        if message["role"] in HISTORY_ROLES:
            turns.append((message["role"], _content_text(message.get("content"), where)))
    last_user = max((i for i, (role, _t) in enumerate(turns) if role == "user"), default=None)
    if last_user is None:
        raise OpenAIError(400, _("Send at least one 'user' message."), param="messages")
    conversation = _merge(turns[: last_user + 1])
    if not conversation or conversation[-1][0] != "user":
        raise OpenAIError(400, _("The last 'user' message is empty."), param="messages")
    return CompletionRequest(
        model=model.strip(),
        text=conversation[-1][1],
        history=conversation[:-1],
        stream=bool(stream),
        include_usage=bool(options.get("include_usage")),
        chat_ref=chat_ref.strip(),
    )


# --- starting the run -------------------------------------------------------------------------


def chat_history_import(
    user: User, *, chat: Chat, turns: list[tuple[str, str]], request: Any = None
) -> ChatMessage | None:
    """Store ``turns`` (role, text) as the first messages of a new, empty ``chat``, one
    path from the root; returns the last one (the parent of the next message)."""
    if not turns:
        return None
    with transaction.atomic():
        if ChatMessage.objects.filter(chat=chat).exists():
            raise Conflict(_("History can only be imported into an empty chat."))
        parent = None
        for role, text in turns:
            parent = ChatMessage.objects.create(
                chat=chat,
                parent=parent,
                role=role,
                content=text,
                agent_version_id=chat.agent_version_id if role == "assistant" else None,
                metadata={"imported": True},
            )
        Chat.objects.filter(pk=chat.pk).update(message_count=len(turns))
        audit_record(
            user,
            action="chat.import_history",
            obj=chat,
            request=request,
            detail={"messages": len(turns), "via": "openai"},
        )
    return parent


@dataclass
class Started:
    run_id: str
    chat_id: str
    version: str
    request: CompletionRequest
    user: Any = None
    drf_request: Any = None

    @property
    def archive_after(self) -> bool:
        """A fresh per-request chat is archived once its answer is out."""
        return not self.request.chat_ref


def _open_chat(user: User, req: CompletionRequest, drf_request: Any) -> tuple[Chat, Any, bool]:
    """The chat of this request, the parent of its new message, and whether the chat was
    created for it."""
    agent, version = resolve_model(user, req.model)
    if req.chat_ref and req.chat_ref != NEW_CHAT:
        if parse_uuid(req.chat_ref) is None:
            raise OpenAIError(
                400, _("%(h)s must be 'new' or a chat id.") % {"h": CHAT_HEADER}, param=CHAT_HEADER
            )
        try:
            chat = chat_selectors.chat_for(user, req.chat_ref)
        except NotFound:
            raise OpenAIError(404, _("There is no such chat."), param=CHAT_HEADER) from None
        if chat.agent_id != agent.pk or (version and version.pk != chat.agent_version_id):
            raise OpenAIError(400, _("This chat is with another agent or version."), param="model")
        return chat, None, False
    try:
        chat = messaging.chat_create(
            user,
            agent_id=agent.pk,
            agent_version_id=version.pk if version else None,
            request=drf_request,
            agent=agent,
        )
    except (NotFound, PermissionDenied):
        raise model_not_found(req.model) from None
    parent = chat_history_import(user, chat=chat, turns=req.history, request=drf_request)
    return chat, parent, True


def start_completion(request: HttpRequest, *, run_id: Any = None) -> Started:
    """Authenticate, validate, open the chat and post the message (sync, one hop); the
    run gets ``run_id`` when given."""
    drf_request = _user(request)
    user = drf_request.user
    req = parse_completion(read_json_object(request), request.headers.get(CHAT_HEADER, ""))
    try:
        # One transaction: a refused message (a limit) leaves no empty chat behind. Its
        # statements are pipelined (agentstore.db): those whose answers nothing reads (the
        # chat's and the turn's INSERTs) travel with the next read.
        with transaction.atomic(), pipelined():
            chat, parent, created = _open_chat(user, req, drf_request)
            turn = messaging.chat_message_post(
                user,
                chat=chat,
                content=req.text,
                parent_id=parent.pk if parent is not None else None,
                request=drf_request,
                via="openai",
                new_chat=created,
                run_id=run_id,
            )
    except DomainError as exc:
        raise from_domain(exc) from None
    return Started(
        run_id=str(turn.run.pk),
        chat_id=str(chat.pk),
        version=turn.chat.agent_version.version,
        request=req,
        user=user,
        drf_request=drf_request,
    )


def _archive(started: Started) -> None:
    chat = Chat(pk=started.chat_id, user=started.user)
    messaging.chat_update(
        started.user, chat=chat, status=Chat.Status.ARCHIVED, request=started.drf_request
    )


async def archive_if_fresh(started: Started) -> None:
    """Archive the request's own chat (its answer is out, or nobody waits for it any more)."""
    if not started.archive_after:
        return
    try:
        await asyncio.shield(streaming.db(_archive, started))
    except (DomainError, DatabaseError):
        logger.warning("could not archive API chat %s", started.chat_id, exc_info=True)


# --- answering --------------------------------------------------------------------------------


def openai_usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("input_tokens") or usage.get("inputTokens") or 0)
    completion = int(usage.get("output_tokens") or usage.get("outputTokens") or 0)
    total = int(usage.get("total_tokens") or usage.get("totalTokens") or prompt + completion)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def terminal_usage(event: dict[str, Any]) -> dict[str, int]:
    """The usage a RUN_FINISHED event carries (a list of per-model TokenUsage)."""
    totals = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    for item in event.get("usage") or []:
        if isinstance(item, dict):
            totals["input_tokens"] += int(item.get("inputTokens") or 0)
            totals["output_tokens"] += int(item.get("outputTokens") or 0)
            totals["total_tokens"] += int(item.get("totalTokens") or 0)
    return openai_usage(totals)


def completion_id(run_id: str) -> str:
    return "chatcmpl-" + run_id.replace("-", "")


def fingerprint(started: Started) -> str:
    return f"{split_model(started.request.model)[0]}@{started.version}"


def _with_headers(response: HttpResponse, started: Started) -> HttpResponse:
    response[CHAT_HEADER] = started.chat_id
    response[RUN_HEADER] = started.run_id
    return response


async def _complete(started: Started, subscription: streaming.Subscription) -> HttpResponse:
    try:
        result = await streaming.run_result(started.run_id, fresh=True, subscription=subscription)
    finally:
        await archive_if_fresh(started)
    if result.status == "failed":
        error = run_failed(result).response()
        return _with_headers(error, started)
    body = {
        "id": completion_id(started.run_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": started.request.model,
        "system_fingerprint": fingerprint(started),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": result.text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": openai_usage(result.usage),
    }
    return _with_headers(JsonResponse(body), started)


class ChunkWriter:
    """``chat.completion.chunk`` SSE lines for one completion (the constant part of every
    chunk is encoded once)."""

    def __init__(self, started: Started, created: int) -> None:
        self.include_usage = started.request.include_usage
        head = {
            "id": completion_id(started.run_id),
            "object": "chat.completion.chunk",
            "created": created,
            "model": started.request.model,
            "system_fingerprint": fingerprint(started),
        }
        self._head = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
        self._tail = ',"usage":null}' if self.include_usage else "}"

    def _line(self, choice: dict[str, Any]) -> str:
        choices = json.dumps([choice], ensure_ascii=False, separators=(",", ":"))
        return f'data: {self._head},"choices":{choices}{self._tail}\n\n'

    def role(self) -> str:
        return self._line(
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        )

    def content(self, text: str) -> str:
        return self._line(
            {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        )

    def finish(self, reason: str = "stop") -> str:
        return self._line({"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason})

    def usage(self, usage: dict[str, int]) -> str:
        body = json.dumps(usage, separators=(",", ":"))
        return f'data: {self._head},"choices":[],"usage":{body}}}\n\n'

    @staticmethod
    def error(error: OpenAIError) -> str:
        return f"data: {json.dumps(error.body(), ensure_ascii=False)}\n\n"

    done = "data: [DONE]\n\n"


async def stream_chunks(started: Started, subscription: streaming.Subscription) -> Any:
    writer = ChunkWriter(started, int(time.time()))
    yield writer.role()
    try:
        async for event in streaming.follow_run(
            started.run_id,
            idle=True,
            idle_poll=KEEPALIVE_SECONDS,
            fresh=True,
            subscription=subscription,
        ):
            kind = event.get("type")
            if event is streaming.IDLE:
                yield ": keep-alive\n\n"
            elif kind == streaming.TEXT_DELTA:
                if event.get("delta"):
                    yield writer.content(event["delta"])
            elif kind == "RUN_FINISHED":
                yield writer.finish("stop")
                if writer.include_usage:
                    yield writer.usage(terminal_usage(event))
                yield writer.done
            elif kind == "RUN_ERROR":
                failure = streaming.RunResult(
                    run_id=started.run_id,
                    status="failed",
                    text="",
                    error_code=str(event.get("code") or ""),
                    error_message=str(event.get("message") or ""),
                )
                yield writer.error(run_failed(failure))
    except streaming.FollowTimeout:
        yield writer.error(
            OpenAIError(504, _("The answer did not finish in time."), type_="server_error")
        )
    except Exception:
        logger.exception("OpenAI-compatible stream of run %s failed", started.run_id)
        yield writer.error(OpenAIError(500, _("The stream failed."), type_="server_error"))
    finally:
        await archive_if_fresh(started)


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return OpenAIError(405, _("Use POST.")).response()
    try:
        # Subscribed to the run's events while it is stored and dispatched.
        started, subscription = await streaming.start_subscribed(start_completion, request)
    except OpenAIError as exc:
        return exc.response()
    except Exception:
        logger.exception("starting a chat completion failed")
        failure = OpenAIError(
            500,
            _("The request could not be processed."),
            type_="server_error",
            headers={"x-should-retry": "false"},  # it may have started the agent already
        )
        return failure.response()
    if not started.request.stream:
        try:
            return await _complete(started, subscription)
        except streaming.FollowTimeout:
            timeout = OpenAIError(
                504, _("The answer did not finish in time."), type_="server_error"
            )
            return _with_headers(timeout.response(), started)
    response = StreamingHttpResponse(
        streaming.SubscribedStream(stream_chunks(started, subscription), subscription),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return _with_headers(response, started)
