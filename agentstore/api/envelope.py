"""The SPEC §10 response envelope: one renderer for success, one handler for errors.

Success: ``{"code": 0, "message": "success", "data": ...}``.
Error:   ``{"code": <5-digit>, "message": "...", "details": ...}``; HTTP status = code // 100.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions as drf_exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from agentstore.errors import DomainError

logger = logging.getLogger(__name__)


class EnvelopeJSONRenderer(JSONRenderer):
    """Wraps every successful payload; error payloads arrive already enveloped."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict | None = None,
    ) -> bytes:
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code == 204:
            return b""
        is_error = response is not None and (
            getattr(response, "exception", False) or response.status_code >= 400
        )
        if not is_error:
            data = {"code": 0, "message": "success", "data": data}
        return super().render(data, accepted_media_type, renderer_context)


def error_body(code: int, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details}


def _drf_error(exc: drf_exceptions.APIException) -> tuple[int, str, Any]:
    if isinstance(exc, drf_exceptions.ValidationError):
        return 40002, _("Validation failed."), exc.detail
    if isinstance(exc, drf_exceptions.ParseError):
        return 40001, _("Malformed request body: %(detail)s") % {"detail": exc.detail}, None
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return 41501, str(exc.detail), None
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        return 40101, _("Authentication credentials were not provided."), None
    if isinstance(exc, drf_exceptions.AuthenticationFailed):
        return 40102, str(exc.detail), None
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return 40301, str(exc.detail), None
    if isinstance(exc, drf_exceptions.NotFound):
        return 40401, _("Not found."), None
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return 40501, str(exc.detail), None
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return 40601, str(exc.detail), None
    if isinstance(exc, drf_exceptions.Throttled):
        wait = int(exc.wait or 1)
        return (
            42901,
            _("Too many requests; try again in %(n)d s.") % {"n": wait},
            {"retry_after": wait},
        )
    status = exc.status_code
    return status * 100 + 1, str(exc.detail), None


def exception_handler(exc: Exception, context: dict) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        code, message, details = exc.code, exc.message, exc.details
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
    elif isinstance(exc, Http404):
        code, message, details = 40401, _("Not found."), None
    elif isinstance(exc, DjangoPermissionDenied):
        code, message, details = 40301, _("You do not have permission to do this."), None
    elif isinstance(exc, drf_exceptions.APIException):
        code, message, details = _drf_error(exc)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, drf_exceptions.Throttled):
            headers["Retry-After"] = str(details["retry_after"])
    else:
        view = context.get("view")
        logger.error("unhandled error in %s", type(view).__name__ if view else "api", exc_info=exc)
        code, message, details = 50001, _("Internal server error."), None
    response = Response(error_body(code, message, details), status=code // 100, headers=headers)
    response.exception = True
    return response
