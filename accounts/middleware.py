"""Activates the language: the user's stored preference, else Accept-Language (SPEC §4.2)."""

from __future__ import annotations

from django.utils import translation
from django.utils.deprecation import MiddlewareMixin


class UserLanguageMiddleware(MiddlewareMixin):
    """Runs before authentication, so it reads the user lazily from the session."""

    def process_request(self, request) -> None:
        language = None
        user = getattr(request, "user", None)
        if user is None:
            from django.contrib.auth import get_user

            user = get_user(request)
        if getattr(user, "is_authenticated", False) and getattr(user, "language", ""):
            language = user.language
        if not language:
            language = translation.get_language_from_request(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()

    def process_response(self, request, response):
        response.headers.setdefault("Content-Language", translation.get_language())
        return response
