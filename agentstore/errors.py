"""Domain errors raised by services; interfaces turn them into the SPEC §10 envelope.

Codes are five digits whose first three are the HTTP status (40001 → 400).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    code = 50001
    default_message = _("Internal error.")

    def __init__(
        self, message: str | None = None, *, code: int | None = None, details: Any = None
    ) -> None:
        self.message = str(message or self.default_message)
        if code is not None:
            self.code = code
        self.details = details
        super().__init__(self.message)

    @property
    def http_status(self) -> int:
        return self.code // 100


class BadRequest(DomainError):
    code = 40001
    default_message = _("Bad request.")


class ValidationFailed(BadRequest):
    code = 40002
    default_message = _("Validation failed.")


class AuthenticationFailed(DomainError):
    code = 40101
    default_message = _("Authentication failed.")


class PermissionDenied(DomainError):
    code = 40301
    default_message = _("You do not have permission to do this.")


class NotFound(DomainError):
    code = 40401
    default_message = _("Not found.")


class Conflict(DomainError):
    code = 40901
    default_message = _("Conflict.")


class RateLimited(DomainError):
    """Too many requests; ``retry_after`` is seconds until the caller may try again."""

    code = 42901
    default_message = _("Too many requests.")

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | float = 1,
        code: int | None = None,
        details: Any = None,
    ) -> None:
        self.retry_after = max(1, int(round(retry_after)))
        merged = {"retry_after": self.retry_after, **(details or {})}
        super().__init__(message, code=code, details=merged)


class UpstreamError(DomainError):
    code = 50201
    default_message = _("An upstream service failed.")
