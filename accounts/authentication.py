"""DRF authentication: personal API keys and JWT access tokens (SPEC §3).

- ``Authorization: Bearer sk-…`` or ``X-API-Key: sk-…`` → :class:`ApiKeyAuthentication`
  (``request.auth`` is the :class:`~accounts.models.ApiKey`, ``request.auth_via`` "api_key").
- ``Authorization: Bearer <jwt>`` → :class:`JWTAuthentication` (``request.auth`` is the
  claims dict, ``request.auth_via`` "jwt").

A credential that is present but wrong, expired or revoked is a 401 (40102) with a
readable message, never a silent fall-through to anonymous.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts import tokens


def _bearer(request) -> str | None:
    """The bearer credential, or None when the header is absent or not a bearer one."""
    header = get_authorization_header(request).split()
    if not header or header[0].lower() != b"bearer":
        return None
    if len(header) != 2:
        raise exceptions.AuthenticationFailed(_("Invalid Authorization header."))
    try:
        return header[1].decode("ascii")
    except UnicodeDecodeError as exc:
        raise exceptions.AuthenticationFailed(_("Invalid Authorization header.")) from exc


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        raw = request.META.get("HTTP_X_API_KEY", "").strip()
        if not raw:
            bearer = _bearer(request)
            if bearer is None or not tokens.looks_like_api_key(bearer):
                return None
            raw = bearer
        try:
            key = tokens.resolve_api_key(raw)
        except tokens.TokenError as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        request.auth_via = "api_key"
        return key.user, key

    def authenticate_header(self, request) -> str:
        return self.keyword


class JWTAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        bearer = _bearer(request)
        if bearer is None or tokens.looks_like_api_key(bearer):
            return None
        try:
            user, claims = tokens.resolve_access_token(bearer)
        except tokens.TokenError as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        request.auth_via = "jwt"
        return user, claims

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": _(
                "A personal API key (sk-…), also accepted as 'Authorization: Bearer sk-…'."
            ),
        }


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.JWTAuthentication"
    name = "jwtAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
