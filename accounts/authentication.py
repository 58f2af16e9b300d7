"""DRF authentication classes: personal API keys and JWT bearer tokens (accounts work)."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        return None


class JWTAuthentication(BaseAuthentication):
    def authenticate(self, request):
        return None
