"""Serializers of the store API: strict input shapes and read-only representations.
They validate and represent; services do the writing."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Agent, AgentType, AgentVersion, Install, Notification, Rating
from agents.rendering import render_markdown
from agents.review_diff import diff_summary
from agentstore.api.serializers import StrictSerializer

# --- input --------------------------------------------------------------------------------


class AgentWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=120, required=False, allow_blank=True)
    short_description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(max_length=50000, required=False, allow_blank=True)
    icon = serializers.CharField(max_length=500, required=False, allow_blank=True)
    category = serializers.CharField(
        max_length=100, required=False, allow_null=True, allow_blank=True,
        help_text=_("Category id or slug; null for none."),
    )  # fmt: skip
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), max_length=10, required=False
    )
    mode = serializers.ChoiceField(choices=Agent.Mode.choices, required=False)
    agent_type = serializers.ChoiceField(choices=AgentType.choices, required=False)


class VersionWriteSerializer(StrictSerializer):
    version = serializers.CharField(max_length=64)
    changelog = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    config = serializers.JSONField(
        required=False, help_text=_("The configuration snapshot (see agents/config-schema).")
    )


class SubmitSerializer(StrictSerializer):
    changelog = serializers.CharField(max_length=10000, required=False, allow_blank=True)


class DuplicateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ReviewDecisionSerializer(StrictSerializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class RatingWriteSerializer(StrictSerializer):
    rating = serializers.IntegerField(min_value=1, max_value=5)
    text = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class RatingUpdateSerializer(StrictSerializer):
    rating = serializers.IntegerField(min_value=1, max_value=5, required=False)
    text = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class ReplySerializer(StrictSerializer):
    reply = serializers.CharField(max_length=2000, allow_blank=True)


class CollaboratorSerializer(StrictSerializer):
    user = serializers.CharField(max_length=254, help_text=_("Username or email."))


class StoreQuerySerializer(serializers.Serializer):
    """Query parameters of the store listing (pagination and filters are read elsewhere)."""

    SORTS = ("relevance", "popular", "rating", "newest", "name")

    q = serializers.CharField(
        max_length=200, required=False, allow_blank=True, trim_whitespace=True
    )
    sort_by = serializers.ChoiceField(choices=SORTS, required=False)
    sort_order = serializers.ChoiceField(choices=("asc", "desc"), required=False)


# --- output -------------------------------------------------------------------------------


def _person(user) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": str(user.pk), "display_name": str(user)}


class AgentCardSerializer(serializers.Serializer):
    """A store item: what lists show."""

    id = serializers.UUIDField()
    slug = serializers.CharField()
    name = serializers.CharField()
    short_description = serializers.CharField()
    icon = serializers.CharField()
    agent_type = serializers.CharField()
    mode = serializers.CharField()
    category = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    developer = serializers.SerializerMethodField()
    current_version = serializers.SerializerMethodField()
    install_count = serializers.IntegerField()
    average_rating = serializers.SerializerMethodField()
    rating_count = serializers.IntegerField()
    is_featured = serializers.BooleanField()
    is_builtin = serializers.BooleanField()
    published_at = serializers.DateTimeField()

    @extend_schema_field({"type": "object", "nullable": True})
    def get_category(self, agent: Agent) -> dict[str, Any] | None:
        cat = agent.category
        return {"id": cat.pk, "name": cat.name, "slug": cat.slug} if cat else None

    def get_tags(self, agent: Agent) -> list[str]:
        # Store lists bring the names along (agents.selectors.store_listing); elsewhere
        # the tags are prefetched. Sorted in Python, so the prefetched rows are reused
        # (no query per agent) and the order is the same either way.
        names = getattr(agent, "tag_names", None)
        if names is None:
            names = [tag.name for tag in agent.tags.all()]
        return sorted(names)

    @extend_schema_field({"type": "object"})
    def get_developer(self, agent: Agent) -> dict[str, Any] | None:
        return _person(agent.developer)

    def get_current_version(self, agent: Agent) -> str | None:
        return agent.current_version.version if agent.current_version_id else None

    def get_average_rating(self, agent: Agent) -> float:
        return float(agent.rating_avg)


class StoreVersionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    version = serializers.CharField()
    changelog = serializers.CharField()
    status = serializers.CharField()
    is_current = serializers.BooleanField()
    published_at = serializers.DateTimeField(source="reviewed_at")


class AgentStoreDetailSerializer(AgentCardSerializer):
    description = serializers.CharField()
    description_html = serializers.SerializerMethodField()

    def get_description_html(self, agent: Agent) -> str:
        return str(render_markdown(agent.description))


class DeveloperAgentSerializer(AgentCardSerializer):
    status = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class VersionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    agent_id = serializers.UUIDField()
    version = serializers.CharField()
    changelog = serializers.CharField()
    config = serializers.JSONField()
    status = serializers.CharField()
    is_current = serializers.BooleanField()
    check_status = serializers.CharField()
    check_results = serializers.JSONField()
    submitted_at = serializers.DateTimeField()
    reviewed_at = serializers.DateTimeField()
    review_note = serializers.CharField()
    reviewer = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field({"type": "object", "nullable": True})
    def get_reviewer(self, version: AgentVersion) -> dict[str, Any] | None:
        return _person(version.reviewer)


class ReviewItemSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    version_id = serializers.UUIDField(source="id")
    agent_id = serializers.UUIDField()
    agent_name = serializers.CharField(source="agent.name")
    agent_slug = serializers.CharField(source="agent.slug")
    developer = serializers.SerializerMethodField()
    version = serializers.CharField()
    current_version = serializers.SerializerMethodField()
    changelog = serializers.CharField()
    config = serializers.JSONField()
    status = serializers.CharField()
    check_status = serializers.CharField()
    check_results = serializers.JSONField()
    submitted_at = serializers.DateTimeField()
    reviewed_at = serializers.DateTimeField()
    review_note = serializers.CharField()
    diff_summary = serializers.SerializerMethodField()

    @extend_schema_field({"type": "object"})
    def get_developer(self, version: AgentVersion) -> dict[str, Any] | None:
        return _person(version.agent.developer)

    def get_current_version(self, version: AgentVersion) -> str | None:
        current = version.agent.current_version
        return current.version if current else None

    @extend_schema_field({"type": "object"})
    def get_diff_summary(self, version: AgentVersion) -> dict[str, Any]:
        current = version.agent.current_version
        base = current.config if current and current.pk != version.pk else None
        return diff_summary(base, version.config)


class RatingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user = serializers.SerializerMethodField()
    rating = serializers.IntegerField(source="stars")
    text = serializers.CharField()
    developer_reply = serializers.CharField()
    replied_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field({"type": "object"})
    def get_user(self, rating: Rating) -> dict[str, Any] | None:
        return _person(rating.user)


class InstallSerializer(serializers.Serializer):
    agent = AgentCardSerializer()
    installed_at = serializers.DateTimeField()
    first_used_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField()
    usage_count = serializers.IntegerField()
    seen_version_id = serializers.UUIDField()
    update_available = serializers.SerializerMethodField()

    def get_update_available(self, install: Install) -> bool:
        return install.update_available


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Notification.Kind.choices)
    message = serializers.CharField()
    data = serializers.JSONField()
    agent_id = serializers.UUIDField()
    version_id = serializers.UUIDField()
    is_read = serializers.SerializerMethodField()
    read_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()

    def get_is_read(self, notification: Notification) -> bool:
        return notification.read_at is not None
