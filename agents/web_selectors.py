"""Reads for the store website and the developer portal pages.

Built on ``agents.selectors`` (which decides what a user may see); this module only
shapes that for pages: card rows, facets, pending-review markers and chart series.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from agents import selectors
from agents.models import Agent, AgentVersion, Category, Install, Rating, Tag

ROW_SIZE = 8


def store_cards() -> QuerySet[Agent]:
    """Store agents with what a card shows (developer, category) and nothing more: cards
    show no tags, so the tag prefetch of ``store_agents`` is dropped, and no long texts,
    so those are deferred."""
    return selectors.store_agents().prefetch_related(None).defer(*selectors.LISTING_DEFERRED)


def home_rows() -> dict[str, list[Agent]]:
    cards = store_cards()
    return {
        "featured": list(
            cards.filter(is_featured=True).order_by("-install_count", "name")[:ROW_SIZE]
        ),
        "popular": list(cards.order_by("-install_count", "-rating_avg", "name")[:ROW_SIZE]),
        # Built-in agents ship with the product: they are not new arrivals.
        "newest": list(cards.filter(is_builtin=False).order_by("-published_at", "name")[:ROW_SIZE]),
        "top_rated": list(
            cards.filter(rating_count__gt=0).order_by("-rating_avg", "-rating_count", "name")[
                :ROW_SIZE
            ]
        ),
    }


def root_categories(tree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Top-level categories with the agents of their subcategories counted in."""

    def total(node: dict[str, Any]) -> int:
        return node["agent_count"] + sum(total(child) for child in node["children"])

    return [{**node, "total_count": total(node)} for node in tree]


def flat_categories(tree: list[dict[str, Any]], depth: int = 0) -> list[dict[str, Any]]:
    """The tree flattened in display order, each node with its ``depth`` (for selects)."""
    flat: list[dict[str, Any]] = []
    for node in tree:
        flat.append({**node, "depth": depth})
        flat.extend(flat_categories(node["children"], depth + 1))
    return flat


def popular_tags(limit: int = 24) -> QuerySet[Tag]:
    """Tags used by the most store agents (the search page's tag filter)."""
    in_store = selectors.store_agents().order_by().values("pk")
    return (
        Tag.objects.annotate(n=Count("agents", filter=Q(agents__in=in_store)))
        .filter(n__gt=0)
        .order_by("-n", "name")[:limit]
    )


def category_by_slug(slug: str) -> Category | None:
    return Category.objects.select_related("parent").filter(slug=slug).first()


def category_path(category: Category) -> list[Category]:
    """Ancestors from the root down to ``category`` (breadcrumbs)."""
    path, node, seen = [], category, set()
    while node is not None and node.pk not in seen:
        path.append(node)
        seen.add(node.pk)
        node = node.parent
    return list(reversed(path))


# --- developer portal ---------------------------------------------------------------------


def portal_agents(user) -> QuerySet[Agent]:
    """The developer's agents with a ``pending_review`` flag and a ``draft_count``."""
    submitted = AgentVersion.objects.filter(
        agent=OuterRef("pk"), status=AgentVersion.Status.SUBMITTED
    )
    return (
        selectors.agents_for_developer(user)
        .prefetch_related(None)
        .annotate(
            pending_review=Exists(submitted),
            draft_count=Count("versions", filter=Q(versions__status=AgentVersion.Status.DRAFT)),
        )
        .order_by("-updated_at", "pk")
    )


def builtin_templates() -> QuerySet[Agent]:
    """Built-in default agents any developer may duplicate as a starting point."""
    return store_cards().filter(is_builtin=True).order_by("agent_type", "name")


def _daily(queryset: QuerySet, field: str, since: datetime.datetime) -> dict[datetime.date, int]:
    rows = (
        queryset.filter(**{f"{field}__gte": since})
        .annotate(day=TruncDate(field))
        .order_by()
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return {(day.date() if isinstance(day, datetime.datetime) else day): n for day, n in rows}


def _chat_querysets(agent: Agent) -> dict[str, tuple[QuerySet, str]]:
    """Chats and messages of the agent, when the chats app provides them.

    The chat models arrive with the chat issue; until then the statistics page simply
    has no chat series. Looked up by name so this module does not import them.
    """
    found: dict[str, tuple[QuerySet, str]] = {}
    try:
        chat_model = apps.get_model("chats", "Chat")
        chat_model._meta.get_field("agent")
        chat_model._meta.get_field("created_at")
        found["chats"] = (chat_model.objects.filter(agent=agent), "created_at")
    except (LookupError, FieldDoesNotExist):
        return found
    try:
        message_model = apps.get_model("chats", "ChatMessage")
        message_model._meta.get_field("chat")
        message_model._meta.get_field("created_at")
        found["messages"] = (message_model.objects.filter(chat__agent=agent), "created_at")
    except (LookupError, FieldDoesNotExist):
        pass
    return found


def agent_statistics(agent: Agent, *, days: int = 30) -> dict[str, Any]:
    """Per-day series for the statistics charts plus totals and the rating histogram."""
    today = timezone.localdate()
    start = today - datetime.timedelta(days=days - 1)
    since = timezone.make_aware(datetime.datetime.combine(start, datetime.time.min))
    labels = [start + datetime.timedelta(days=i) for i in range(days)]

    installs = _daily(Install.objects.filter(agent=agent), "installed_at", since)
    ratings = _daily(Rating.objects.filter(agent=agent), "created_at", since)
    activity = [
        {"key": "installs", "values": [installs.get(day, 0) for day in labels]},
        {"key": "ratings", "values": [ratings.get(day, 0) for day in labels]},
    ]
    totals = {
        "installs": agent.install_count,
        "ratings": agent.rating_count,
        "rating_avg": agent.rating_avg,
    }
    for key, (queryset, field) in _chat_querysets(agent).items():
        series = _daily(queryset, field, since)
        activity.append({"key": key, "values": [series.get(day, 0) for day in labels]})
        totals[key] = queryset.count()

    # The average rating as it stood at the end of each day.
    rating_avg_series = []
    prior = Rating.objects.filter(agent=agent, created_at__lt=since).aggregate(
        n=Count("pk"), total=Sum("stars")
    )
    running_count, running_sum = prior["n"] or 0, prior["total"] or 0
    daily_stars: dict[datetime.date, list[int]] = {}
    for created, stars in Rating.objects.filter(agent=agent, created_at__gte=since).values_list(
        "created_at", "stars"
    ):
        daily_stars.setdefault(timezone.localtime(created).date(), []).append(stars)
    for day in labels:
        for stars in daily_stars.get(day, []):
            running_sum += stars
            running_count += 1
        rating_avg_series.append(round(running_sum / running_count, 2) if running_count else None)

    return {
        "labels": [day.isoformat() for day in labels],
        "activity": activity,
        "rating_avg": rating_avg_series,
        "histogram": selectors.rating_histogram(agent),
        "totals": totals,
    }
