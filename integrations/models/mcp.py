"""MCP connections (SPEC §6.3). Health checks, tool discovery, the outbound policy and the
encrypted auth token come with the MCP issue; the model exists now so agent
configurations can reference connections and review can fingerprint their tools."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class MCPConnection(models.Model):
    class Transport(models.TextChoices):
        STDIO = "stdio", _("stdio")
        SSE = "sse", _("Server-sent events")
        STREAMABLE_HTTP = "streamable_http", _("Streamable HTTP")

    class Status(models.TextChoices):
        UNKNOWN = "unknown", _("Not checked")
        OK = "ok", _("Healthy")
        ERROR = "error", _("Failing")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.CASCADE,
        related_name="mcp_connections",
    )
    transport = models.CharField(
        _("transport"), max_length=20, choices=Transport.choices, default=Transport.STREAMABLE_HTTP
    )
    url = models.URLField(_("URL"), max_length=500, blank=True)
    command = models.CharField(_("command"), max_length=500, blank=True)
    args = models.JSONField(_("arguments"), default=list, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    is_public = models.BooleanField(_("public"), default=False)
    # Discovered tools: [{"name", "description", "input_schema"}].
    tools = models.JSONField(_("tools"), default=list, blank=True)
    tools_fingerprint = models.CharField(_("tools fingerprint"), max_length=64, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.UNKNOWN
    )
    last_checked_at = models.DateTimeField(_("last checked"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("MCP connection")
        verbose_name_plural = _("MCP connections")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
