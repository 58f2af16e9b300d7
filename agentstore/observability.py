"""Request ids and structured (JSON) logs.

Every request gets an id (an incoming ``X-Request-ID`` is kept if it looks sane); log
records carry it, and runs later set their own id with :func:`bind_request_id`.

As a second line of defence (the first is never logging secrets), the handler filter
redacts credentials in URLs, bearer tokens and ``sk-`` style API keys from messages and
tracebacks, and the JSON formatter masks ``extra=`` fields whose names look secret.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_REDACTIONS = [
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.I), r"\g<keep>***@"),
    (re.compile(r"(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/-]+=*", re.I), r"\g<keep>***"),
    (re.compile(r"(?P<keep>\bsk-)[A-Za-z0-9_-]{12,}"), r"\g<keep>***"),
]
# Whole names or suffixes only, so metrics such as ``tokens_in`` are not masked.
_SECRET_NAME = re.compile(
    r"(^|_)(password|passwd|secret|secret_key|api_?key|token|authorization|credentials?)$", re.I
)


def redact(text: str) -> str:
    """Mask credentials in URLs, bearer tokens and ``sk-`` keys inside free text."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def current_request_id() -> str:
    return _request_id.get()


def bind_request_id(value: str) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


class RequestIdMiddleware:
    """Sets the request id for the request's logs and echoes it in ``X-Request-ID``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _start(self, request: HttpRequest) -> tuple[str, contextvars.Token]:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = rid
        return rid, _request_id.set(rid)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        rid, token = self._start(request)
        try:
            response: HttpResponse = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = rid
        return response

    async def __acall__(self, request: HttpRequest):
        rid, token = self._start(request)
        try:
            response = await self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = rid
        return response


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` and redacts secrets from the message and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            rid = _request_id.get()
            if rid == "-":
                # Django logs 4xx/5xx responses after the middleware chain has returned
                # (django.request passes the request as extra): take the id from there.
                rid = getattr(getattr(record, "request", None), "request_id", "-")
            record.request_id = rid
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = None  # a bad format call: leave it to the handler's error reporting
        if message is not None:
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra= fields are included, exceptions as text."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in vars(record).items():
            if key in _RESERVED or key.startswith("_"):
                continue
            if isinstance(value, HttpRequest):
                # Not its repr: that holds the query string, which may carry a token.
                payload["method"], payload["path"] = value.method, value.path
            else:
                payload[key] = "***" if _SECRET_NAME.search(key) else value
        if record.exc_info:
            payload["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)
