from __future__ import annotations

from django.contrib import admin

from knowledge.models import KnowledgeBase


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "is_public", "enabled", "document_count", "chunk_count",
                    "updated_at"]  # fmt: skip
    list_filter = ["is_public", "enabled"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["owner", "collection_name", "document_count", "chunk_count",
                       "created_at", "updated_at"]  # fmt: skip
