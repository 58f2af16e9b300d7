"""Chats, their messages (a tree), agent runs, run steps and run events (SPEC §5.1).

A ``Run`` is one execution of an agent for one user message (chat), one API call
(one-off), a trigger or a developer test. Its events — the AG-UI events it emitted, each
with a per-run sequence number — are stored in ``RunEvent`` before they are published, so
a client that reconnects can replay what it missed (STYLE §3). Rules live in
``chats.services`` and ``chats.runtime``; the models hold fields and constraints.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Chat(models.Model):
    """A chat session of one user with one agent, pinned to one agent version."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        ARCHIVED = "archived", _("Archived")
        DELETED = "deleted", _("Deleted")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="chats",
    )
    agent = models.ForeignKey(
        "agents.Agent", verbose_name=_("agent"), on_delete=models.CASCADE, related_name="chats"
    )
    agent_version = models.ForeignKey(
        "agents.AgentVersion",
        verbose_name=_("agent version"),
        on_delete=models.CASCADE,
        related_name="chats",
        help_text=_("The pinned version; changes only by an explicit upgrade."),
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    is_test = models.BooleanField(
        _("test chat"),
        default=False,
        help_text=_("A developer's test chat against a draft version."),
    )
    context = models.JSONField(_("context"), default=dict, blank=True)
    last_message_at = models.DateTimeField(_("last message"), null=True, blank=True)
    message_count = models.PositiveIntegerField(_("messages"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("chat")
        verbose_name_plural = _("chats")
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["user", "status", "-updated_at"], name="chat_user_list"),
            models.Index(fields=["user", "-last_message_at"], name="chat_user_recent"),
            models.Index(fields=["agent", "-created_at"], name="chat_agent"),
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)


class ChatMessage(models.Model):
    """One message of a chat. ``parent`` makes a tree: an edit or a regeneration creates
    a sibling; the chat shows one path from the root."""

    class Role(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")
        SYSTEM = "system", _("System")
        TOOL = "tool", _("Tool")

    class Status(models.TextChoices):
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        DELETED = "deleted", _("Deleted")

    class MessageType(models.TextChoices):
        TEXT = "text", _("Text")
        PROGRESS = "progress", _("Progress")
        ERROR = "error", _("Error")
        SYSTEM = "system", _("System")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    chat = models.ForeignKey(
        Chat, verbose_name=_("chat"), on_delete=models.CASCADE, related_name="messages"
    )
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices)
    content = models.TextField(_("content"), blank=True)
    content_type = models.CharField(_("content type"), max_length=50, default="text/markdown")
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.SENT
    )
    message_type = models.CharField(
        _("message type"), max_length=10, choices=MessageType.choices, default=MessageType.TEXT
    )
    # tool_calls [{id, name, input, output, status, duration_ms}], citations, usage,
    # model, agent_version (string), error {code, message}.
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    run = models.ForeignKey(
        "Run",
        verbose_name=_("run"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    agent_version = models.ForeignKey(
        "agents.AgentVersion",
        verbose_name=_("agent version"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The version that wrote this message (assistant messages)."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("chat message")
        verbose_name_plural = _("chat messages")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["chat", "created_at"], name="chatmessage_chat_time"),
            models.Index(fields=["parent", "created_at"], name="chatmessage_parent"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class Run(models.Model):
    """One execution of an agent (SPEC §5.1)."""

    class Source(models.TextChoices):
        CHAT = "chat", _("Chat")
        API = "api", _("API")
        ONEOFF = "oneoff", _("One-off")
        TRIGGER = "trigger", _("Trigger")
        TEST = "test", _("Test")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
    # Counted against the per-user concurrency limit.
    ACTIVE = frozenset({Status.PENDING, Status.RUNNING})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="runs",
    )
    agent = models.ForeignKey(
        "agents.Agent", verbose_name=_("agent"), on_delete=models.CASCADE, related_name="runs"
    )
    agent_version = models.ForeignKey(
        "agents.AgentVersion",
        verbose_name=_("agent version"),
        on_delete=models.CASCADE,
        related_name="runs",
    )
    llm_model = models.ForeignKey(
        "integrations.LLMModel",
        verbose_name=_("model"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text=_("The model the run resolved to (set when it starts)."),
    )
    chat = models.ForeignKey(
        Chat,
        verbose_name=_("chat"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="runs",
    )
    user_message = models.ForeignKey(
        ChatMessage,
        verbose_name=_("user message"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    assistant_message = models.ForeignKey(
        ChatMessage,
        verbose_name=_("assistant message"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    source = models.CharField(
        _("source"), max_length=10, choices=Source.choices, default=Source.CHAT
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    input = models.JSONField(_("input"), default=dict, blank=True, help_text=_("{text, context}"))
    output = models.TextField(_("output"), blank=True)
    error_code = models.CharField(_("error code"), max_length=50, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    attempt = models.PositiveSmallIntegerField(
        _("attempt"), default=0, help_text=_("Executions started so far (1 = first).")
    )
    current_step = models.CharField(_("current step"), max_length=200, blank=True)
    usage = models.JSONField(
        _("usage"), default=dict, blank=True, help_text=_("{input_tokens, output_tokens, ...}")
    )
    cost = models.DecimalField(
        _("estimated cost"), max_digits=14, decimal_places=6, default=Decimal("0")
    )
    callback_url = models.URLField(_("callback URL"), max_length=1000, blank=True)
    # A paused run's AgentScope state and pending approvals (resumed by a later issue).
    state = models.JSONField(_("state"), default=dict, blank=True)
    last_seq = models.PositiveIntegerField(_("last event sequence"), default=0)
    cancel_requested_at = models.DateTimeField(_("stop requested"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    first_token_at = models.DateTimeField(_("first token"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat"), null=True, blank=True)

    class Meta:
        verbose_name = _("run")
        verbose_name_plural = _("runs")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"], name="run_sweeper"),
            models.Index(fields=["user", "status"], name="run_user_status"),
            models.Index(fields=["user", "-created_at"], name="run_user_recent"),
            models.Index(fields=["agent", "-created_at"], name="run_agent_recent"),
            models.Index(fields=["chat", "-created_at"], name="run_chat_recent"),
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    @property
    def ttft_ms(self) -> int | None:
        if self.started_at is None or self.first_token_at is None:
            return None
        return int((self.first_token_at - self.started_at).total_seconds() * 1000)


class RunStep(models.Model):
    """One model call, tool call, retrieval, plan, critique or workflow node of a run."""

    class Kind(models.TextChoices):
        MODEL_CALL = "model_call", _("Model call")
        TOOL_CALL = "tool_call", _("Tool call")
        RETRIEVAL = "retrieval", _("Retrieval")
        WORKFLOW_NODE = "workflow_node", _("Workflow node")
        PLAN = "plan", _("Plan")
        CRITIQUE = "critique", _("Critique")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    run = models.ForeignKey(
        Run, verbose_name=_("run"), on_delete=models.CASCADE, related_name="steps"
    )
    index = models.PositiveIntegerField(_("index"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=200, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.RUNNING
    )
    input = models.JSONField(_("input"), default=dict, blank=True)
    output = models.JSONField(_("output"), default=dict, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    retries = models.PositiveSmallIntegerField(_("retries"), default=0)
    tokens = models.JSONField(_("tokens"), default=dict, blank=True)
    cost = models.DecimalField(
        _("estimated cost"), max_digits=14, decimal_places=6, default=Decimal("0")
    )
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("run step")
        verbose_name_plural = _("run steps")
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="runstep_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.index}:{self.kind}:{self.name}"


class RunEvent(models.Model):
    """One AG-UI event a run emitted, in the camelCase wire format, with its sequence
    number. Stored before it is published (replay on reconnect, SPEC §5.2)."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(
        Run, verbose_name=_("run"), on_delete=models.CASCADE, related_name="events"
    )
    seq = models.PositiveIntegerField(_("sequence"))
    type = models.CharField(_("type"), max_length=40)
    payload = models.JSONField(_("payload"), default=dict)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("run event")
        verbose_name_plural = _("run events")
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="runevent_unique_seq"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="runevent_seq_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"
