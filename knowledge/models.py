"""Knowledge bases (SPEC §7). Documents, ingestion and retrieval come with the knowledge
issue; the knowledge base itself exists now so agent configurations can reference it."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class KnowledgeBase(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.CASCADE,
        related_name="knowledge_bases",
    )
    is_public = models.BooleanField(_("public"), default=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    embedding_model = models.CharField(_("embedding model"), max_length=200, blank=True)
    chunk_size = models.PositiveIntegerField(_("chunk size"), default=500)
    chunk_overlap = models.PositiveIntegerField(_("chunk overlap"), default=50)
    collection_name = models.CharField(_("vector collection"), max_length=200, blank=True)
    document_count = models.PositiveIntegerField(_("documents"), default=0)
    chunk_count = models.PositiveIntegerField(_("chunks"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("knowledge base")
        verbose_name_plural = _("knowledge bases")
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["owner", "name"], name="kb_owner_name")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(chunk_overlap__lt=models.F("chunk_size")),
                name="kb_overlap_below_chunk_size",
            )
        ]

    def __str__(self) -> str:
        return self.name
