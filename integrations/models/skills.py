"""Skills (SPEC §6.4): versioned tool or instruction packages. Upload, safe extraction,
static analysis and sandboxed execution come with the skills issue; the models exist now
so agent configurations can pin skill versions and review can read the analysis."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Skill(models.Model):
    class Kind(models.TextChoices):
        TOOL = "tool", _("Tool skill")
        INSTRUCTION = "instruction", _("Instruction skill")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")
        DEPRECATED = "deprecated", _("Deprecated")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.CASCADE,
        related_name="skills",
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.TOOL)
    description = models.TextField(_("description"), blank=True)
    is_public = models.BooleanField(_("public"), default=False)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.DRAFT
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("skill")
        verbose_name_plural = _("skills")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "slug"], name="skill_unique_owner_slug")
        ]

    def __str__(self) -> str:
        return self.name


class SkillVersion(models.Model):
    """One uploaded version. ``analysis`` holds the static-analysis report:
    ``{"findings": [{"severity": "error|warning|info", "message": ..., "path": ...,
    "line": ...}]}``; review fails on errors and warns on warnings."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    skill = models.ForeignKey(
        Skill, verbose_name=_("skill"), on_delete=models.CASCADE, related_name="versions"
    )
    version = models.CharField(_("version"), max_length=64)
    manifest = models.JSONField(_("manifest"), default=dict, blank=True)
    analysis = models.JSONField(_("static analysis"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("skill version")
        verbose_name_plural = _("skill versions")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["skill", "version"], name="skillversion_unique")
        ]

    def __str__(self) -> str:
        return f"{self.skill} {self.version}"
