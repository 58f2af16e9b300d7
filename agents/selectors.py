"""Reads of the store, always scoped to what the acting user may see (STYLE §2).

Another developer's draft is simply absent from these querysets, so views answer
"not found" rather than "forbidden". Store search ranking lives in ``agents.search``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import (
    Case,
    Count,
    Expression,
    F,
    IntegerField,
    JSONField,
    Q,
    QuerySet,
    Value,
    When,
)
from guardian.models import UserObjectPermission

from accounts.models import User
from agents.models import (
    Agent,
    AgentUserObjectPermission,
    AgentVersion,
    Category,
    Install,
    Notification,
    Rating,
    Tag,
)
from agentstore.errors import NotFound

# --- developer side -----------------------------------------------------------------------


def _collaborator_agent_ids(user: User) -> QuerySet:
    return AgentUserObjectPermission.objects.filter(
        user=user, permission__codename="change_agent"
    ).values("content_object_id")


def agents_for_developer(user: User) -> QuerySet[Agent]:
    """Agents the user owns or collaborates on (any status)."""
    if not getattr(user, "is_authenticated", False):
        return Agent.objects.none()
    return (
        Agent.objects.filter(Q(developer=user) | Q(pk__in=_collaborator_agent_ids(user)))
        .select_related("developer", "category", "current_version")
        .prefetch_related("tags")
    )


def parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def agent_for_developer(user: User, agent_id: Any) -> Agent:
    """One agent the user owns or collaborates on; anything else is NotFound."""
    pk = parse_uuid(agent_id)
    agent = agents_for_developer(user).filter(pk=pk).first() if pk else None
    if agent is None:
        raise NotFound()
    return agent


def agent_role(user: User, agent: Agent) -> str | None:
    """``"owner"``, ``"collaborator"`` or ``None``. Superusers get no implicit role here:
    the developer side is about ownership, reviewers work in the admin."""
    if not getattr(user, "is_authenticated", False):
        return None
    if agent.developer_id == user.pk:
        return "owner"
    if _collaborator_agent_ids(user).filter(content_object_id=agent.pk).exists():
        return "collaborator"
    return None


def collaborators_of(agent: Agent) -> QuerySet[User]:
    return User.objects.filter(
        pk__in=AgentUserObjectPermission.objects.filter(
            content_object=agent, permission__codename="change_agent"
        ).values("user_id")
    ).order_by("username")


def versions_for_developer(user: User, agent: Agent) -> QuerySet[AgentVersion]:
    """Every version of an agent the user may develop (checked by the caller)."""
    return (
        AgentVersion.objects.filter(agent=agent)
        .select_related("submitted_by", "reviewer", "created_by")
        .order_by("-created_at", "-id")
    )


def version_for_developer(user: User, agent_id: Any, version_id: Any) -> AgentVersion:
    agent = agent_for_developer(user, agent_id)
    pk = parse_uuid(version_id)
    version = versions_for_developer(user, agent).filter(pk=pk).first() if pk else None
    if version is None:
        raise NotFound()
    version.agent = agent
    return version


# --- what a developer may put in a configuration ------------------------------------------


def _shared_ids(user: User, model, codename: str) -> list[str]:
    """Primary keys of ``model`` rows shared with ``user`` through a guardian object
    permission (generic table, string keys)."""
    content_type = ContentType.objects.get_for_model(model)
    return list(
        UserObjectPermission.objects.filter(
            user=user, content_type=content_type, permission__codename=codename
        ).values_list("object_pk", flat=True)
    )


def llm_models_usable_by(user: User) -> QuerySet:
    from integrations.selectors import llm_models_for

    return llm_models_for(user)


def skills_usable_by(user: User) -> QuerySet:
    """Own skills, published public skills, and skills shared with the user."""
    from integrations.models import Skill

    shared = _shared_ids(user, Skill, "view_skill")
    return Skill.objects.filter(
        Q(owner=user)
        | Q(is_public=True, status=Skill.Status.PUBLISHED)
        | Q(pk__in=[parse_uuid(pk) for pk in shared if parse_uuid(pk)])
    ).exclude(~Q(owner=user) & Q(status=Skill.Status.DEPRECATED))


def skill_versions_usable_by(user: User) -> QuerySet:
    from integrations.models import SkillVersion

    return SkillVersion.objects.filter(skill__in=skills_usable_by(user)).select_related("skill")


def mcp_connections_usable_by(user: User) -> QuerySet:
    """Active connections the user owns, public ones, and ones shared with the user."""
    from integrations.models import MCPConnection

    shared = _shared_ids(user, MCPConnection, "view_mcpconnection")
    return MCPConnection.objects.filter(
        Q(owner=user)
        | Q(is_public=True)
        | Q(pk__in=[parse_uuid(pk) for pk in shared if parse_uuid(pk)]),
        is_active=True,
    )


def knowledge_bases_usable_by(user: User) -> QuerySet:
    """Enabled knowledge bases the user owns, public ones, and ones shared with the user."""
    from knowledge.models import KnowledgeBase

    shared = _shared_ids(user, KnowledgeBase, "view_knowledgebase")
    return KnowledgeBase.objects.filter(
        Q(owner=user)
        | Q(is_public=True)
        | Q(pk__in=[parse_uuid(pk) for pk in shared if parse_uuid(pk)]),
        enabled=True,
    )


# --- store side ---------------------------------------------------------------------------


def store_agents() -> QuerySet[Agent]:
    """Published agents whose current version is approved: the whole public catalogue.

    No join to the versions is needed to know that the current version is approved:
    the database refuses anything else (``agents_agent.current_version_id`` may only
    name an approved version of the same agent, and that version cannot leave
    ``approved`` while it is current; triggers of migration ``0003``). The filter is
    the one of the partial index ``agent_store_listed``.
    """
    return (
        Agent.objects.filter(status=Agent.Status.PUBLISHED, current_version__isnull=False)
        .select_related("developer", "category", "current_version")
        .prefetch_related("tags")
    )


# Columns a store list never shows; the listing queries would otherwise fetch them for
# every row they sort (the version's configuration is the largest by far).
LISTING_DEFERRED = (
    "description",
    "developer__password",
    "current_version__config",
    "current_version__changelog",
    "current_version__check_results",
    "current_version__persona_scores",
    "current_version__review_note",
)


class TagNames(Expression):
    """The agent's tag names, a JSON array from one correlated subquery: a list gets them
    with its page rather than from a second query (a prefetch), whose bookkeeping costs
    more than the query itself. Unordered: callers sort (in Python, so the order never
    depends on the database's collation)."""

    output_field = JSONField()

    def __init__(self, alias: str | None = None) -> None:
        super().__init__()
        self.alias = alias

    def resolve_expression(
        self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False
    ):
        return TagNames(query.get_initial_alias())

    def relabeled_clone(self, change_map):
        return TagNames(change_map.get(self.alias, self.alias))

    def as_sql(self, compiler, connection):
        through, quote = Agent.tags.through._meta, compiler.quote_name
        names = (
            "COALESCE(jsonb_agg(tag.name), '[]'::jsonb)"
            if connection.vendor == "postgresql"
            else "json_group_array(tag.name)"
        )
        return (
            # Table and column names from the models; no values.
            f"(SELECT {names} FROM {quote(through.db_table)} AS agent_tag"  # noqa: S608
            f" JOIN {quote(Tag._meta.db_table)} AS tag"
            f" ON tag.{quote(Tag._meta.pk.column)}"
            f" = agent_tag.{quote(through.get_field('tag').column)}"
            f" WHERE agent_tag.{quote(through.get_field('agent').column)}"
            f" = {quote(self.alias)}.{quote(Agent._meta.pk.column)})",
            [],
        )


def store_listing() -> QuerySet[Agent]:
    """``store_agents()`` for lists: the large columns items never show are deferred, and
    the tag names come with each agent (``tag_names``) instead of from a prefetch."""
    return (
        store_agents()
        .prefetch_related(None)
        .defer(*LISTING_DEFERRED)
        .annotate(tag_names=TagNames())
    )


def store_agent(id_or_slug: Any) -> Agent:
    """One store agent by UUID or slug; drafts, archived agents and unknown ids are
    NotFound."""
    pk = parse_uuid(id_or_slug)
    lookup = Q(pk=pk) if pk else Q(slug=str(id_or_slug))
    agent = store_agents().filter(lookup).first()
    if agent is None:
        raise NotFound()
    return agent


def versions_visible_in_store(agent: Agent) -> QuerySet[AgentVersion]:
    """Approved and deprecated versions, newest first. Drafts, submissions and rejected
    versions never leave the developer side."""
    return AgentVersion.objects.filter(agent=agent, status__in=AgentVersion.STORE_VISIBLE).order_by(
        "-reviewed_at", "-created_at"
    )


def category_descendant_ids(category: Category) -> list[int]:
    """The category and everything below it (the tree is small: one query)."""
    return _subtree(Category.objects.values_list("pk", "parent_id"), category.pk)


def category_ids_under(ref: str) -> list[int] | None:
    """The category with id or slug ``ref`` and everything below it, from one query;
    ``None`` when there is no such category."""
    rows = list(Category.objects.values_list("pk", "slug", "parent_id"))
    key, wanted = (0, int(ref)) if ref.isdigit() else (1, ref)
    found = [row[0] for row in rows if row[key] == wanted]
    if not found:
        return None
    return _subtree([(pk, parent_id) for pk, _slug, parent_id in rows], found[0])


def _subtree(rows: Iterable[tuple[int, int | None]], root: int) -> list[int]:
    children: dict[int | None, list[int]] = {}
    for pk, parent_id in rows:
        children.setdefault(parent_id, []).append(pk)
    result, stack = [], [root]
    while stack:
        pk = stack.pop()
        if pk in result:
            continue
        result.append(pk)
        stack.extend(children.get(pk, []))
    return result


def category_tree() -> list[dict[str, Any]]:
    """Categories as nested dicts with published-agent counts (two queries)."""
    counts = dict(
        store_agents()
        .order_by()
        .values("category_id")
        .annotate(n=Count("pk"))
        .values_list("category_id", "n")
    )
    nodes: dict[int, dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    categories = list(Category.objects.order_by("ordering", "name"))
    for cat in categories:
        nodes[cat.pk] = {
            "id": cat.pk,
            "name": cat.name,
            "slug": cat.slug,
            "description": cat.description,
            "icon": cat.icon,
            "ordering": cat.ordering,
            "parent_id": cat.parent_id,
            "agent_count": counts.get(cat.pk, 0),
            "children": [],
        }
    for cat in categories:
        node = nodes[cat.pk]
        parent = nodes.get(cat.parent_id) if cat.parent_id else None
        (parent["children"] if parent else roots).append(node)
    return roots


def installs_for(user: User) -> QuerySet[Install]:
    """The user's installs of agents still in the store, with ``has_update`` annotated."""
    if not getattr(user, "is_authenticated", False):
        return Install.objects.none()
    return (
        Install.objects.filter(user=user)
        .select_related("agent__developer", "agent__category", "agent__current_version")
        .prefetch_related("agent__tags")
        .order_by("-last_used_at", "-installed_at", "-id")
    )


def agent_for_uninstall(user: User, ref: Any) -> Agent:
    """A store agent, or an agent the user installed that has since left the store."""
    pk = parse_uuid(ref)
    lookup = Q(agent_id=pk) if pk else Q(agent__slug=str(ref))
    install = installs_for(user).filter(lookup).first()
    if install is None:
        raise NotFound()
    return install.agent


def install_of(user: User | AnonymousUser, agent: Agent) -> Install | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Install.objects.filter(user=user, agent=agent).first()


def ratings_for_agent(agent: Agent) -> QuerySet[Rating]:
    return Rating.objects.filter(agent=agent).select_related("user").order_by("-created_at", "-id")


def rating_of(user: User, agent: Agent) -> Rating | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Rating.objects.filter(user=user, agent=agent).first()


def rating_histogram(agent: Agent) -> dict[int, int]:
    counts = dict(
        Rating.objects.filter(agent=agent)
        .order_by()
        .values("stars")
        .annotate(n=Count("pk"))
        .values_list("stars", "n")
    )
    return {stars: counts.get(stars, 0) for stars in range(1, 6)}


def also_installed(agent: Agent, *, limit: int = 6) -> QuerySet[Agent]:
    """Store agents most often installed by users who installed ``agent``."""
    co_installers = Install.objects.filter(agent=agent).values("user_id")
    return (
        store_agents()
        .exclude(pk=agent.pk)
        .filter(installs__user_id__in=co_installers)
        .annotate(co_installs=Count("installs"))
        .order_by("-co_installs", "-install_count", "name")[:limit]
    )


# --- review -------------------------------------------------------------------------------


def review_queue(*, status: str | None = None) -> QuerySet[AgentVersion]:
    """Versions for reviewers: submitted first (oldest submission first), then the rest
    newest first. Drafts are the developer's business and never listed."""
    queryset = AgentVersion.objects.exclude(status=AgentVersion.Status.DRAFT)
    if status:
        queryset = queryset.filter(status=status)
    is_pending = Case(
        When(status=AgentVersion.Status.SUBMITTED, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    return (
        queryset.select_related(
            "agent__developer", "agent__current_version", "submitted_by", "reviewer"
        )
        .annotate(is_pending=is_pending)
        .order_by(
            "-is_pending",
            # Pending: oldest submission first; reviewed: most recent decision first.
            Case(When(is_pending=1, then=F("submitted_at"))).asc(nulls_last=True),
            F("reviewed_at").desc(nulls_last=True),
            "-created_at",
        )
    )


def review_item(version_id: Any) -> AgentVersion:
    pk = parse_uuid(version_id)
    version = review_queue().filter(pk=pk).first() if pk else None
    if version is None:
        raise NotFound()
    return version


# --- notifications ------------------------------------------------------------------------


def notifications_for(user: User, *, unread_only: bool = False) -> QuerySet[Notification]:
    queryset = Notification.objects.filter(user=user).select_related("agent", "version")
    if unread_only:
        queryset = queryset.filter(read_at__isnull=True)
    return queryset.order_by("-created_at", "-id")
