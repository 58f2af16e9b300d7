"""Admin for chats and runs: read-mostly views for support and debugging.

Runs are written by the runtime only, so their admin is read-only (no add, no edit);
a run's steps and events are shown inline in order.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from chats.models import Chat, ChatMessage, Run, RunEvent, RunStep


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class RunStepInline(ReadOnlyInline):
    model = RunStep
    fields = ["index", "kind", "name", "status", "duration_ms", "tokens", "cost", "error"]
    ordering = ["index"]


class RunEventInline(ReadOnlyInline):
    model = RunEvent
    fields = ["seq", "type", "payload", "created_at"]
    ordering = ["seq"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "user",
        "agent",
        "source",
        "status",
        "attempt",
        "error_code",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "source", "error_code"]
    search_fields = ["id", "user__username", "agent__name", "error_code"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "agent"]
    inlines = [RunStepInline, RunEventInline]
    readonly_fields = [field.name for field in Run._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ChatMessageInline(ReadOnlyInline):
    model = ChatMessage
    fk_name = "chat"
    fields = ["created_at", "role", "status", "message_type", "content", "parent"]
    ordering = ["created_at"]


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "title",
        "user",
        "agent",
        "status",
        "is_test",
        "message_count",
        "updated_at",
    ]
    list_filter = ["status", "is_test"]
    search_fields = ["id", "title", "user__username", "agent__name"]
    list_select_related = ["user", "agent"]
    raw_id_fields = ["user", "agent", "agent_version"]
    inlines = [ChatMessageInline]


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "chat", "role", "status", "message_type", "short_content", "created_at"]
    list_filter = ["role", "status", "message_type"]
    search_fields = ["id", "chat__id", "content"]
    raw_id_fields = ["chat", "parent", "run", "agent_version"]

    @admin.display(description=_("content"))
    def short_content(self, obj: ChatMessage) -> str:
        return obj.content[:80]
