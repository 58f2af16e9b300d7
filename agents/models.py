"""The store: categories, tags, agents (listings), their versions, installs, ratings and
in-app notifications (SPEC §4.1).

Rules live in ``agents.services``; the models hold fields, constraints and the few
invariants the database can enforce (one current version per agent, 1–5 stars, one
install and one rating per user and agent).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from agents.semver import validate_semver


class AgentType(models.TextChoices):
    REACT = "react", _("ReAct (reason and act with tools)")
    DIALOG = "dialog", _("Dialog")
    AGENTIC_RAG = "agentic_rag", _("Agentic RAG")
    PLAN_EXECUTE = "plan_execute", _("Plan and execute")
    REFLEXION = "reflexion", _("Reflexion")


class Category(models.Model):
    """A node of the store's category tree."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    description = models.TextField(_("description"), blank=True)
    ordering = models.IntegerField(_("ordering"), default=0)
    icon = models.CharField(_("icon"), max_length=50, blank=True, help_text=_("An emoji."))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["ordering", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Walk up the tree so a category can never become its own ancestor.
        node, seen = self.parent, set()
        while node is not None:
            if node.pk == self.pk or node.pk in seen:
                raise ValidationError({"parent": _("A category cannot be inside itself.")})
            seen.add(node.pk)
            node = node.parent


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=50, unique=True)
    slug = models.SlugField(_("slug"), max_length=60, unique=True, allow_unicode=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    """A store listing. What runs is its ``current_version`` (the approved one)."""

    class Mode(models.TextChoices):
        CHAT = "chat", _("Chat")
        TRIGGERS = "triggers", _("Triggers only")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")
        ARCHIVED = "archived", _("Archived")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=120, unique=True, allow_unicode=True)
    short_description = models.CharField(_("short description"), max_length=200, blank=True)
    description = models.TextField(
        _("description"), blank=True, help_text=_("Markdown; rendered and sanitised.")
    )
    icon = models.CharField(_("icon"), max_length=500, blank=True, help_text=_("Emoji or URL."))
    developer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("developer"),
        on_delete=models.PROTECT,
        related_name="agents",
    )
    category = models.ForeignKey(
        Category,
        verbose_name=_("category"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agents",
    )
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="agents")
    agent_type = models.CharField(
        _("agent type"), max_length=20, choices=AgentType.choices, default=AgentType.REACT
    )
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices, default=Mode.CHAT)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    current_version = models.ForeignKey(
        "AgentVersion",
        verbose_name=_("current version"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    is_featured = models.BooleanField(_("featured"), default=False)
    is_builtin = models.BooleanField(_("built-in"), default=False)
    # Denormalised counters, changed only by services with F() updates.
    install_count = models.PositiveIntegerField(_("installs"), default=0)
    rating_avg = models.DecimalField(_("average rating"), max_digits=3, decimal_places=2, default=0)
    rating_count = models.PositiveIntegerField(_("ratings"), default=0)
    rating_sum = models.PositiveIntegerField(default=0)
    published_at = models.DateTimeField(_("published"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("agent")
        verbose_name_plural = _("agents")
        ordering = ["name", "id"]
        permissions = [
            ("install_agent", _("Can install agents")),
            ("rate_agent", _("Can rate agents")),
        ]
        indexes = [
            models.Index(fields=["status", "-install_count"], name="agent_store_popular"),
            models.Index(fields=["status", "-rating_avg"], name="agent_store_rating"),
            models.Index(fields=["status", "-published_at"], name="agent_store_newest"),
            models.Index(fields=["status", "category"], name="agent_store_category"),
            # The store's own filter (``selectors.store_agents``): counting a category's
            # listed agents is an index-only scan of this partial index.
            models.Index(
                fields=["category"],
                condition=Q(status="published", current_version__isnull=False),
                name="agent_store_listed",
            ),
            # The API's "newest" sort (``published_at DESC NULLS LAST``): the plain
            # ``-published_at`` index above sorts nulls first and cannot serve it. Created
            # on PostgreSQL only (migration 0003): SQLite refuses NULLS LAST in an index.
            models.Index(
                F("published_at").desc(nulls_last=True),
                condition=Q(status="published", current_version__isnull=False),
                name="agent_store_listed_newest",
            ),
            models.Index(fields=["status", "agent_type"], name="agent_store_type"),
            models.Index(fields=["developer", "-updated_at"], name="agent_developer"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_in_store(self) -> bool:
        return self.status == self.Status.PUBLISHED and self.current_version_id is not None


class AgentUserObjectPermission(UserObjectPermissionBase):
    """guardian object permissions on agents (collaborators), with a real foreign key."""

    content_object = models.ForeignKey(Agent, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = _("agent user permission")
        verbose_name_plural = _("agent user permissions")


class AgentGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Agent, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = _("agent group permission")
        verbose_name_plural = _("agent group permissions")


class AgentVersion(models.Model):
    """One version of an agent: a configuration snapshot that is frozen once submitted."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Submitted")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        DEPRECATED = "deprecated", _("Deprecated")

    class CheckStatus(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        PASSED = "passed", _("Passed")
        FAILED = "failed", _("Failed")

    # Versions whose configuration can no longer change.
    FROZEN = frozenset({Status.SUBMITTED, Status.APPROVED, Status.REJECTED, Status.DEPRECATED})
    # Versions users may ever see in the store.
    STORE_VISIBLE = frozenset({Status.APPROVED, Status.DEPRECATED})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(
        Agent, verbose_name=_("agent"), on_delete=models.CASCADE, related_name="versions"
    )
    version = models.CharField(_("version"), max_length=64, validators=[validate_semver])
    changelog = models.TextField(_("changelog"), blank=True)
    config = models.JSONField(_("configuration"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.DRAFT
    )
    is_current = models.BooleanField(_("current"), default=False, editable=False)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("submitted by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("reviewer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    review_note = models.TextField(_("review note"), blank=True)
    check_results = models.JSONField(
        _("check results"), default=list, blank=True, help_text=_("[{name, status, message}]")
    )
    check_status = models.CharField(
        _("check status"), max_length=10, choices=CheckStatus.choices, default=CheckStatus.PENDING
    )
    persona_scores = models.JSONField(_("persona scores"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("agent version")
        verbose_name_plural = _("agent versions")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("review_agentversion", _("Can approve or reject agent versions")),
            ("submit_agentversion", _("Can submit agent versions for review")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["agent", "version"], name="agentversion_unique_semver"),
            models.UniqueConstraint(
                fields=["agent"],
                condition=Q(is_current=True),
                name="agentversion_one_current_per_agent",
            ),
            models.CheckConstraint(
                condition=Q(is_current=False) | Q(status="approved"),
                name="agentversion_current_is_approved",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "submitted_at"], name="agentversion_queue"),
            models.Index(fields=["agent", "-created_at"], name="agentversion_agent"),
        ]

    def __str__(self) -> str:
        return f"{self.agent} {self.version}"

    @property
    def is_frozen(self) -> bool:
        return self.status in self.FROZEN

    def clean(self) -> None:
        if self.pk is None or self._state.adding:
            return
        stored = AgentVersion.objects.filter(pk=self.pk).values_list("status", "config").first()
        if stored and stored[0] in self.FROZEN and stored[1] != self.config:
            raise ValidationError(
                {"config": _("The configuration of a submitted version cannot change.")}
            )


class Install(models.Model):
    """A user's installation of an agent, with usage (SPEC §4.1 AgentUsage)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="installs",
    )
    agent = models.ForeignKey(
        Agent, verbose_name=_("agent"), on_delete=models.CASCADE, related_name="installs"
    )
    installed_at = models.DateTimeField(_("installed"), auto_now_add=True)
    first_used_at = models.DateTimeField(_("first used"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    usage_count = models.PositiveIntegerField(_("uses"), default=0)
    # The version the user last saw; an update is available when the agent's current
    # version differs.
    seen_version = models.ForeignKey(
        AgentVersion,
        verbose_name=_("seen version"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("install")
        verbose_name_plural = _("installs")
        ordering = ["-installed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "agent"], name="install_unique_user_agent")
        ]
        indexes = [models.Index(fields=["agent", "user"], name="install_agent_user")]

    def __str__(self) -> str:
        return f"{self.user} → {self.agent}"

    @property
    def update_available(self) -> bool:
        current = self.agent.current_version_id
        return current is not None and current != self.seen_version_id


class Rating(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="ratings",
    )
    agent = models.ForeignKey(
        Agent, verbose_name=_("agent"), on_delete=models.CASCADE, related_name="ratings"
    )
    stars = models.PositiveSmallIntegerField(
        _("stars"), validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    text = models.TextField(_("review"), blank=True, validators=[MaxLengthValidator(2000)])
    developer_reply = models.TextField(
        _("developer reply"), blank=True, validators=[MaxLengthValidator(2000)]
    )
    replied_at = models.DateTimeField(_("replied"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("rating")
        verbose_name_plural = _("ratings")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "agent"], name="rating_unique_user_agent"),
            models.CheckConstraint(
                condition=Q(stars__gte=1) & Q(stars__lte=5), name="rating_stars_1_to_5"
            ),
        ]
        indexes = [models.Index(fields=["agent", "-created_at"], name="rating_agent_recent")]

    def __str__(self) -> str:
        return f"{self.stars}★ {self.agent} by {self.user}"


class Notification(models.Model):
    """An in-app notice (for example: an agent you installed has a new version)."""

    class Kind(models.TextChoices):
        AGENT_UPDATED = "agent_updated", _("Agent updated")
        VERSION_APPROVED = "version_approved", _("Version approved")
        VERSION_REJECTED = "version_rejected", _("Version rejected")

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    kind = models.CharField(_("kind"), max_length=30, choices=Kind.choices)
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    version = models.ForeignKey(
        AgentVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    message = models.TextField(_("message"), blank=True)
    data = models.JSONField(default=dict, blank=True)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "read_at", "-created_at"], name="notification_inbox")
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"
