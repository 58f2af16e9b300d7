"""A lean Django ASGI handler for the token-authenticated streaming API (``/v1/``).

The site's middleware stack (``settings.MIDDLEWARE``) is built for browsers: sessions,
CSRF, messages, the user's language from the session, static files. Under ASGI, Django
runs each of those synchronous hooks through ``sync_to_async`` — a hop to a thread and
back to the event loop per hook, around fourteen per request, and WhiteNoise (synchronous
only) moves the outer part of the chain onto a thread as well. Every hop waits for the
server loop, which is busy relaying the streams of other requests: under load those hops,
not the work, made most of the OpenAI-compatible endpoint's time to first token.

``/v1/`` needs none of it: clients authenticate with ``Authorization: Bearer`` (personal
API key or JWT; no session, no cookie, so no CSRF), and it serves no static files or
messages. This handler gives those requests a chain that never leaves the loop:

- :class:`~agentstore.observability.RequestIdMiddleware` (async),
- :class:`InlineHooksMiddleware`: the security headers (``SecurityMiddleware``: HSTS,
  ``nosniff``, referrer and cross-origin-opener policies, the HTTPS redirect) and
  ``X-Frame-Options``, whose hooks do no I/O and run inline, and the language of the
  ``Accept-Language`` header (what the site's ``LocaleMiddleware``-like resolution does
  without a session).

Views reached this way do their database work on ``chats.streaming.db``'s thread pool
as before. Everything else — the site, the REST API, the admin, WebSockets — keeps the
full stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils import translation
from django.utils.cache import patch_vary_headers

from agentstore.observability import RequestIdMiddleware

# Path prefixes served by the lean handler (see the module docstring).
LEAN_PREFIXES = ("/v1/",)


def is_lean(scope: dict[str, Any]) -> bool:
    return scope["type"] == "http" and scope["path"].startswith(LEAN_PREFIXES)


class InlineHooksMiddleware:
    """Runs non-blocking Django middleware hooks inline on the event loop (no thread hop)
    and activates the language of the request's ``Accept-Language`` header."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        # Their hooks only read settings and the request and set headers: no I/O.
        self.hooks = [SecurityMiddleware(get_response), XFrameOptionsMiddleware(get_response)]
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        for hook in self.hooks:
            if hasattr(hook, "process_request"):
                response = hook.process_request(request)
                if response is not None:
                    return response
        language = translation.get_language_from_request(request)
        previous = translation.get_language()
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        try:
            response = await self.get_response(request)
            patch_vary_headers(response, ("Accept-Language",))
            response.headers.setdefault("Content-Language", request.LANGUAGE_CODE)
        finally:
            translation.activate(previous) if previous else translation.deactivate()
        for hook in reversed(self.hooks):
            if hasattr(hook, "process_response"):
                response = hook.process_response(request, response)
        return response


LEAN_MIDDLEWARE: list[Callable[[Callable], Any]] = [RequestIdMiddleware, InlineHooksMiddleware]


class LeanASGIHandler(ASGIHandler):
    """Django's ASGI handler with :data:`LEAN_MIDDLEWARE` instead of ``settings.MIDDLEWARE``."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        for middleware in reversed(LEAN_MIDDLEWARE):
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler
