"""Activates the language: the user's stored preference, else the language cookie set by the
language switch, else Accept-Language, else ``settings.LANGUAGE_CODE`` (SPEC §4.2)."""

from __future__ import annotations

from django.contrib.auth.middleware import get_user
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.deprecation import MiddlewareMixin


def supported_language(code: str) -> str | None:
    """``code`` mapped to a configured language (``zh-cn`` → ``zh-hans``), or None."""
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return None


class UserLanguageMiddleware(MiddlewareMixin):
    """Runs before AuthenticationMiddleware, so it loads the user itself from the session.

    ``django.contrib.auth.middleware.get_user`` caches the user on the request, so the
    ``request.user`` that AuthenticationMiddleware sets later costs no second query.
    """

    def process_request(self, request) -> None:
        user = getattr(request, "user", None)
        if user is None and hasattr(request, "session"):
            user = get_user(request)
        language = None
        if getattr(user, "is_authenticated", False):
            language = supported_language(getattr(user, "language", ""))
        if not language:
            language = translation.get_language_from_request(request)
        request._language_before = translation.get_language()
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()

    def process_response(self, request, response):
        # The same URL is rendered in several languages: caches must key on these headers.
        patch_vary_headers(response, ("Accept-Language", "Cookie"))
        response.headers.setdefault("Content-Language", translation.get_language())
        # The response is rendered by now. Put back the thread's language, so it does not
        # leak into whatever runs next on this thread (inline tasks, the next test).
        if hasattr(request, "_language_before"):
            previous = request._language_before
            if previous:
                translation.activate(previous)
            else:
                translation.deactivate()
        return response
