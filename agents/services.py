"""Every write of the store that has a rule or a side effect (STYLE §2).

Services take the acting user first and keyword-only arguments, raise the domain errors
of ``agentstore.errors`` (the API and pages turn them into envelopes and messages), write
the audit log on every transition, and hand background work over on commit.

Rights: owners and collaborators (guardian ``change_agent`` on the agent) edit an agent
and its draft versions; only the owner archives, deletes or manages collaborators.
Counters (installs, ratings) change with ``F()`` updates in the same transaction as the
row that causes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, FloatField, QuerySet, Value
from django.db.models.functions import Cast, Coalesce, Greatest, Round
from django.utils import timezone, translation
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from guardian.shortcuts import assign_perm, remove_perm

from accounts.audit import audit_record
from accounts.models import User
from agents import selectors
from agents.config import default_config, normalize_config, schema_problems, validate_config
from agents.models import (
    Agent,
    AgentVersion,
    Category,
    Install,
    Notification,
    Rating,
    Tag,
)
from agents.semver import is_semver, semver_key
from agentstore.dispatch import dispatch
from agentstore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

logger = logging.getLogger(__name__)

MAX_TAGS = 10
MAX_TEXT = 2000

# Error codes beyond the generic ones, so clients can tell conflicts apart.
CODE_IMMUTABLE = 40901
CODE_CHECKS_RUNNING = 40902
CODE_CHECKS_FAILED = 40903
CODE_PENDING_REVIEW = 40904
CODE_ALREADY = 40905


# --- helpers ------------------------------------------------------------------------------


def _full_clean(obj, *, exclude: Iterable[str] = ()) -> None:
    try:
        obj.full_clean(exclude=list(exclude), validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise ValidationFailed(details=exc.message_dict) from exc


def _require_perm(user: User, perm: str) -> None:
    if not (getattr(user, "is_authenticated", False) and user.has_perm(perm)):
        raise PermissionDenied()


def _require_editor(actor: User, agent: Agent) -> str:
    """Owner or collaborator; anyone else does not even see the agent (NotFound)."""
    role = selectors.agent_role(actor, agent)
    if role is None:
        raise NotFound()
    return role


def _require_owner(actor: User, agent: Agent) -> None:
    if _require_editor(actor, agent) != "owner":
        raise PermissionDenied(_("Only the owner of the agent can do this."))


def _unique_slug(base: str, *, exclude_pk: Any = None) -> str:
    root = (slugify(base, allow_unicode=True) or "agent")[:100]
    slug, n = root, 2
    queryset = Agent.objects.exclude(pk=exclude_pk) if exclude_pk else Agent.objects.all()
    while queryset.filter(slug=slug).exists():
        slug, n = f"{root}-{n}", n + 1
    return slug


def _resolve_tags(names: Iterable[str]) -> list[Tag]:
    cleaned: dict[str, str] = {}
    for name in names:
        name = str(name).strip()[:50]
        slug = slugify(name, allow_unicode=True)
        if slug and slug not in cleaned:
            cleaned[slug] = name
    if len(cleaned) > MAX_TAGS:
        raise ValidationFailed(details={"tags": [_("At most %(n)d tags.") % {"n": MAX_TAGS}]})
    tags = []
    for slug, name in cleaned.items():
        tag = Tag.objects.filter(slug=slug).first()
        if tag is None:
            tag, _created = Tag.objects.get_or_create(name=name, defaults={"slug": slug})
        tags.append(tag)
    return tags


def _resolve_category(value: Any) -> Category | None:
    if value in (None, ""):
        return None
    if isinstance(value, Category):
        return value
    category = (
        Category.objects.filter(pk=value).first()
        if str(value).isdigit()
        else Category.objects.filter(slug=str(value)).first()
    )
    if category is None:
        raise ValidationFailed(details={"category": [_("Unknown category.")]})
    return category


def _check_text(field: str, value: str | None) -> None:
    if value is not None and len(value) > MAX_TEXT:
        raise ValidationFailed(details={field: [_("At most %(n)d characters.") % {"n": MAX_TEXT}]})


# --- agents -------------------------------------------------------------------------------

AGENT_FIELDS = (
    "name",
    "slug",
    "short_description",
    "description",
    "icon",
    "category",
    "tags",
    "mode",
    "agent_type",
)


def _apply_agent_fields(agent: Agent, data: dict[str, Any]) -> list[Tag] | None:
    unknown = set(data) - set(AGENT_FIELDS)
    if unknown:
        raise ValidationFailed(details={name: [_("Unknown field.")] for name in sorted(unknown)})
    for field in ("name", "short_description", "description", "icon", "mode", "agent_type"):
        if field in data:
            setattr(agent, field, data[field] if data[field] is not None else "")
    if "category" in data:
        agent.category = _resolve_category(data["category"])
    if "slug" in data and data["slug"]:
        slug = slugify(str(data["slug"]), allow_unicode=True)
        if not slug or Agent.objects.exclude(pk=agent.pk).filter(slug=slug).exists():
            raise ValidationFailed(details={"slug": [_("This slug is already taken.")]})
        agent.slug = slug
    return _resolve_tags(data["tags"]) if data.get("tags") is not None else None


def agent_create(actor: User, *, data: dict[str, Any], request: Any = None) -> Agent:
    """A new draft agent owned by ``actor`` (developers only). ``data`` holds any of
    ``AGENT_FIELDS``; ``tags`` are names, ``category`` an id or slug."""
    _require_perm(actor, "agents.add_agent")
    if not str(data.get("name") or "").strip():
        raise ValidationFailed(details={"name": [_("This field is required.")]})
    agent = Agent(developer=actor, status=Agent.Status.DRAFT)
    with transaction.atomic():
        tags = _apply_agent_fields(agent, data)
        if not agent.slug:
            agent.slug = _unique_slug(agent.name)
        _full_clean(agent, exclude=["current_version"])
        agent.save()
        if tags is not None:
            agent.tags.set(tags)
        audit_record(actor, action="agent.create", obj=agent, request=request)
    return agent


def agent_update(actor: User, *, agent: Agent, data: dict[str, Any], request: Any = None) -> Agent:
    """Change the listing. The agent type follows the current version once one exists."""
    _require_editor(actor, agent)
    if agent.status == Agent.Status.ARCHIVED:
        raise Conflict(_("An archived agent cannot be edited."))
    if "agent_type" in data and agent.current_version_id and data["agent_type"] != agent.agent_type:
        raise ValidationFailed(
            details={"agent_type": [_("The agent type comes from the current version.")]}
        )
    with transaction.atomic():
        tags = _apply_agent_fields(agent, data)
        _full_clean(agent, exclude=["current_version"])
        agent.save()
        if tags is not None:
            agent.tags.set(tags)
        audit_record(
            actor,
            action="agent.update",
            obj=agent,
            request=request,
            detail={"fields": sorted(data)},
        )
    return agent


def agent_archive(actor: User, *, agent: Agent, request: Any = None) -> Agent:
    """Take the agent out of the store for good. Installs and pinned chats keep working."""
    _require_owner(actor, agent)
    if agent.status == Agent.Status.ARCHIVED:
        raise Conflict(_("The agent is already archived."), code=CODE_ALREADY)
    with transaction.atomic():
        agent.status = Agent.Status.ARCHIVED
        agent.is_featured = False
        agent.save(update_fields=["status", "is_featured", "updated_at"])
        audit_record(actor, action="agent.archive", obj=agent, request=request)
    return agent


def agent_delete(actor: User, *, agent: Agent, request: Any = None) -> None:
    """Delete an agent that was never published; published agents are archived instead."""
    _require_owner(actor, agent)
    if agent.status != Agent.Status.DRAFT or agent.current_version_id is not None:
        raise Conflict(_("Only never-published drafts can be deleted; archive this agent."))
    if agent.versions.exclude(status=AgentVersion.Status.DRAFT).exists():
        raise Conflict(_("This agent has versions under review; archive it instead."))
    with transaction.atomic():
        audit_record(
            actor,
            action="agent.delete",
            obj=agent,
            request=request,
            detail={"name": agent.name, "slug": agent.slug},
        )
        agent.delete()


def agent_duplicate(
    actor: User, *, source: Agent, name: str | None = None, request: Any = None
) -> Agent:
    """A new draft agent owned by ``actor`` with a 0.1.0 draft version copying the source's
    configuration. Store (and built-in) agents give their current version; agents the
    actor develops give their newest version, whatever its state."""
    _require_perm(actor, "agents.add_agent")
    role = selectors.agent_role(actor, source)
    if role is not None:
        origin = source.versions.order_by("-created_at", "-id").first()
    elif source.is_in_store:
        origin = source.current_version
    else:
        raise NotFound()
    config = normalize_config(origin.config) if origin else default_config(source.agent_type)
    new_name = (name or "").strip() or _("%(name)s (copy)") % {"name": source.name}
    with transaction.atomic():
        agent = Agent.objects.create(
            name=new_name[:100],
            slug=_unique_slug(new_name),
            short_description=source.short_description,
            description=source.description,
            icon=source.icon,
            developer=actor,
            category=source.category,
            agent_type=config.get("agent_type", source.agent_type),
            mode=source.mode,
        )
        agent.tags.set(source.tags.all())
        AgentVersion.objects.create(
            agent=agent,
            version="0.1.0",
            changelog=_("Duplicated from %(name)s.") % {"name": source.name},
            config=config,
            created_by=actor,
        )
        audit_record(
            actor,
            action="agent.duplicate",
            obj=agent,
            request=request,
            detail={"source": str(source.pk), "source_version": str(origin.pk) if origin else ""},
        )
    return agent


def agent_add_collaborator(actor: User, *, agent: Agent, user: User, request: Any = None) -> None:
    _require_owner(actor, agent)
    if user.pk == agent.developer_id:
        raise ValidationFailed(details={"user": [_("The owner is not a collaborator.")]})
    if not user.is_active or not user.has_perm("agents.change_agent"):
        raise ValidationFailed(details={"user": [_("Only developers can collaborate.")]})
    if selectors.agent_role(user, agent) == "collaborator":
        raise Conflict(_("Already a collaborator."), code=CODE_ALREADY)
    with transaction.atomic():
        assign_perm("change_agent", user, agent)
        audit_record(
            actor,
            action="agent.collaborator_add",
            obj=agent,
            request=request,
            detail={"user": str(user.pk)},
        )


def agent_remove_collaborator(
    actor: User, *, agent: Agent, user: User, request: Any = None
) -> None:
    _require_owner(actor, agent)
    if selectors.agent_role(user, agent) != "collaborator":
        raise NotFound()
    with transaction.atomic():
        remove_perm("change_agent", user, agent)
        audit_record(
            actor,
            action="agent.collaborator_remove",
            obj=agent,
            request=request,
            detail={"user": str(user.pk)},
        )


# --- versions -----------------------------------------------------------------------------


def _check_version_string(agent: Agent, version: str, *, exclude_pk: Any = None) -> None:
    if not is_semver(version):
        raise ValidationFailed(details={"version": [_("Use a semantic version such as 1.2.0.")]})
    existing = list(
        agent.versions.exclude(pk=exclude_pk).values_list("version", flat=True)
        if exclude_pk
        else agent.versions.values_list("version", flat=True)
    )
    if version in existing:
        raise ValidationFailed(
            details={"version": [_("Version %(v)s already exists.") % {"v": version}]}
        )
    highest = max(existing, key=semver_key, default=None)
    if highest is not None and semver_key(version) <= semver_key(highest):
        raise ValidationFailed(
            details={
                "version": [_("Must be greater than the latest version, %(v)s.") % {"v": highest}]
            }
        )


def _checked_config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ValidationFailed(details={"config": [_("The configuration must be an object.")]})
    normalized = normalize_config(config)
    problems = schema_problems(normalized)
    if problems:
        raise ValidationFailed(_("The configuration is not valid."), details={"config": problems})
    return normalized


def agent_version_create(
    actor: User,
    *,
    agent: Agent,
    version: str,
    changelog: str = "",
    config: dict[str, Any] | None = None,
    request: Any = None,
) -> AgentVersion:
    """A draft version. Without ``config`` it starts from the newest version's
    configuration (or the defaults of the agent's type)."""
    _require_editor(actor, agent)
    if agent.status == Agent.Status.ARCHIVED:
        raise Conflict(_("An archived agent gets no new versions."))
    _check_version_string(agent, version)
    if config is None:
        newest = agent.versions.order_by("-created_at", "-id").first()
        config = newest.config if newest else default_config(agent.agent_type)
    config = _checked_config(config)
    with transaction.atomic():
        try:
            with transaction.atomic():
                obj = AgentVersion.objects.create(
                    agent=agent,
                    version=version,
                    changelog=changelog or "",
                    config=config,
                    created_by=actor,
                )
        except IntegrityError as exc:
            raise ValidationFailed(
                details={"version": [_("Version %(v)s already exists.") % {"v": version}]}
            ) from exc
        if not agent.current_version_id and agent.agent_type != config["agent_type"]:
            agent.agent_type = config["agent_type"]
            agent.save(update_fields=["agent_type", "updated_at"])
        audit_record(
            actor,
            action="agent_version.create",
            obj=obj,
            request=request,
            detail={"agent": str(agent.pk), "version": version},
        )
    return obj


def agent_version_update(
    actor: User,
    *,
    version: AgentVersion,
    data: dict[str, Any],
    request: Any = None,
) -> AgentVersion:
    """Edit a draft's ``version``, ``changelog`` or ``config``. Anything submitted is
    immutable (Conflict 40901)."""
    agent = version.agent
    _require_editor(actor, agent)
    unknown = set(data) - {"version", "changelog", "config"}
    if unknown:
        raise ValidationFailed(details={name: [_("Unknown field.")] for name in sorted(unknown)})
    with transaction.atomic():
        locked = AgentVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != AgentVersion.Status.DRAFT:
            raise Conflict(
                _("Version %(v)s is %(status)s and can no longer change; create a new version.")
                % {"v": locked.version, "status": locked.get_status_display()},
                code=CODE_IMMUTABLE,
            )
        if "version" in data and data["version"] != locked.version:
            _check_version_string(agent, data["version"], exclude_pk=locked.pk)
            locked.version = data["version"]
        if "changelog" in data:
            locked.changelog = data["changelog"] or ""
        if "config" in data:
            locked.config = _checked_config(data["config"])
        locked.save()
        if (
            "config" in data
            and not agent.current_version_id
            and agent.agent_type != locked.config["agent_type"]
        ):
            agent.agent_type = locked.config["agent_type"]
            agent.save(update_fields=["agent_type", "updated_at"])
        audit_record(
            actor,
            action="agent_version.update",
            obj=locked,
            request=request,
            detail={"fields": sorted(data)},
        )
    locked.agent = agent
    return locked


def agent_version_delete(actor: User, *, version: AgentVersion, request: Any = None) -> None:
    _require_editor(actor, version.agent)
    if version.status != AgentVersion.Status.DRAFT:
        raise Conflict(_("Only draft versions can be deleted."), code=CODE_IMMUTABLE)
    with transaction.atomic():
        audit_record(
            actor,
            action="agent_version.delete",
            obj=version,
            request=request,
            detail={"agent": str(version.agent_id), "version": version.version},
        )
        version.delete()


def agent_version_submit(
    actor: User,
    *,
    version: AgentVersion,
    changelog: str | None = None,
    request: Any = None,
) -> AgentVersion:
    """Freeze a draft and send it to review. An invalid configuration is refused with
    its problems (40002); the automated checks run as a task after commit."""
    agent = version.agent
    _require_editor(actor, agent)
    _require_perm(actor, "agents.submit_agentversion")
    if agent.status == Agent.Status.ARCHIVED:
        raise Conflict(_("An archived agent cannot be submitted."))
    with transaction.atomic():
        locked = AgentVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != AgentVersion.Status.DRAFT:
            raise Conflict(
                _("Only a draft can be submitted; this version is %(status)s.")
                % {"status": locked.get_status_display()},
                code=CODE_IMMUTABLE,
            )
        if (
            AgentVersion.objects.filter(agent=agent, status=AgentVersion.Status.SUBMITTED)
            .exclude(pk=locked.pk)
            .exists()
        ):
            raise Conflict(
                _("Another version of this agent is waiting for review."),
                code=CODE_PENDING_REVIEW,
            )
        if changelog is not None:
            locked.changelog = changelog
        if not locked.changelog.strip():
            raise ValidationFailed(details={"changelog": [_("Describe what changed.")]})
        problems = validate_config(locked.config, developer=agent.developer)
        if actor.pk != agent.developer_id:
            # A collaborator submits on the owner's behalf: both must be able to use
            # what the configuration references.
            problems += [
                p for p in validate_config(locked.config, developer=actor) if p not in problems
            ]
        if problems:
            raise ValidationFailed(
                _("The configuration is not valid."), details={"config": problems}
            )
        locked.config = normalize_config(locked.config)
        locked.status = AgentVersion.Status.SUBMITTED
        locked.submitted_at = timezone.now()
        locked.submitted_by = actor
        locked.check_status = AgentVersion.CheckStatus.PENDING
        locked.check_results = []
        locked.reviewer = None
        locked.reviewed_at = None
        locked.review_note = ""
        locked.save()
        audit_record(
            actor,
            action="agent_version.submit",
            obj=locked,
            request=request,
            detail={"agent": str(agent.pk), "version": locked.version},
        )
        version_id = str(locked.pk)
        transaction.on_commit(lambda: _dispatch_checks(version_id))
    locked.agent = agent
    return locked


def _dispatch_checks(version_id: str) -> None:
    from agents.tasks import run_review_checks

    dispatch(run_review_checks, version_id)


def agent_version_deprecate(
    actor: User, *, version: AgentVersion, request: Any = None
) -> AgentVersion:
    """Mark an older approved version deprecated (chats pinned to it keep running)."""
    _require_editor(actor, version.agent)
    with transaction.atomic():
        locked = AgentVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != AgentVersion.Status.APPROVED or locked.is_current:
            raise Conflict(_("Only approved versions that are not current can be deprecated."))
        locked.status = AgentVersion.Status.DEPRECATED
        locked.save(update_fields=["status", "updated_at"])
        audit_record(actor, action="agent_version.deprecate", obj=locked, request=request)
    locked.agent = version.agent
    return locked


# --- review -------------------------------------------------------------------------------


def review_run_checks(*, version_id: str) -> AgentVersion | None:
    """The automated review checks (the task body). Claims the version with a
    conditional update, so a duplicate delivery does nothing."""
    from agents.checks_review import run_checks

    claimed = AgentVersion.objects.filter(
        pk=version_id,
        status=AgentVersion.Status.SUBMITTED,
        check_status=AgentVersion.CheckStatus.PENDING,
    ).update(check_status=AgentVersion.CheckStatus.RUNNING, updated_at=timezone.now())
    if not claimed:
        return None
    version = AgentVersion.objects.select_related("agent__developer").get(pk=version_id)
    results = run_checks(version)
    failed = any(result["status"] == "fail" for result in results)
    version.check_results = results
    version.check_status = (
        AgentVersion.CheckStatus.FAILED if failed else AgentVersion.CheckStatus.PASSED
    )
    version.save(update_fields=["check_results", "check_status", "updated_at"])
    audit_record(
        None,
        action="agent_version.checks",
        obj=version,
        detail={"status": version.check_status},
    )
    return version


def review_rerun_checks(reviewer: User, *, version: AgentVersion, request: Any = None) -> None:
    """Run the checks again (for example after a worker was lost mid-run)."""
    _require_perm(reviewer, "agents.review_agentversion")
    if version.status != AgentVersion.Status.SUBMITTED:
        raise Conflict(_("Only submitted versions are checked."))
    with transaction.atomic():
        AgentVersion.objects.filter(pk=version.pk).update(
            check_status=AgentVersion.CheckStatus.PENDING, check_results=[]
        )
        audit_record(reviewer, action="agent_version.rerun_checks", obj=version, request=request)
        version_id = str(version.pk)
        transaction.on_commit(lambda: _dispatch_checks(version_id))


NOTIFICATION_MESSAGES = {
    Notification.Kind.AGENT_UPDATED: gettext_lazy("%(agent)s was updated to version %(version)s."),
    Notification.Kind.VERSION_APPROVED: gettext_lazy(
        "Version %(version)s of %(agent)s was approved."
    ),
    Notification.Kind.VERSION_REJECTED: gettext_lazy(
        "Version %(version)s of %(agent)s was rejected."
    ),
}


def _notify(
    user_ids: Iterable[Any], *, kind: str, agent: Agent, version: AgentVersion, **data
) -> int:
    """In-app notices, each written in its recipient's language (else the site default)."""
    payload = {"agent_name": agent.name, "version": version.version, **data}
    params = {"agent": agent.name, "version": version.version}
    languages = dict(
        User.objects.filter(
            # A queryset stays a subquery, so thousands of installers are one query.
            pk__in=user_ids if isinstance(user_ids, QuerySet) else set(user_ids),
            is_active=True,
        ).values_list("pk", "language")
    )
    rendered: dict[str, str] = {}
    rows = []
    for user_id, language in languages.items():
        language = language or settings.LANGUAGE_CODE
        if language not in rendered:
            with translation.override(language):
                rendered[language] = str(NOTIFICATION_MESSAGES[kind]) % params
        rows.append(
            Notification(
                user_id=user_id,
                kind=kind,
                agent=agent,
                version=version,
                message=rendered[language],
                data=payload,
            )
        )
    Notification.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def review_approve(
    reviewer: User, *, version: AgentVersion, note: str = "", request: Any = None
) -> AgentVersion:
    """Publish a submitted version: it becomes the agent's only current version, the
    agent becomes published, installers and the developer are notified — one
    transaction. Checks that have not run yet run first; failed checks block approval."""
    _require_perm(reviewer, "agents.review_agentversion")
    _check_text("note", note)
    if version.check_status == AgentVersion.CheckStatus.PENDING:
        review_run_checks(version_id=str(version.pk))
    with transaction.atomic():
        locked = AgentVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != AgentVersion.Status.SUBMITTED:
            raise Conflict(
                _("Only submitted versions can be approved; this one is %(status)s.")
                % {"status": locked.get_status_display()}
            )
        if locked.check_status in (
            AgentVersion.CheckStatus.PENDING,
            AgentVersion.CheckStatus.RUNNING,
        ):
            raise Conflict(_("The automated checks are still running."), code=CODE_CHECKS_RUNNING)
        if locked.check_status == AgentVersion.CheckStatus.FAILED:
            raise Conflict(
                _("The automated checks failed; reject the version with a note."),
                code=CODE_CHECKS_FAILED,
            )
        agent = Agent.objects.select_for_update().get(pk=locked.agent_id)
        if agent.status == Agent.Status.ARCHIVED:
            raise Conflict(_("The agent is archived."))
        previous_id = agent.current_version_id
        now = timezone.now()
        # Clear the old flag first: the partial unique index allows one current row.
        AgentVersion.objects.filter(agent=agent, is_current=True).update(is_current=False)
        locked.status = AgentVersion.Status.APPROVED
        locked.is_current = True
        locked.reviewer = reviewer
        locked.reviewed_at = now
        locked.review_note = note or ""
        locked.save()
        agent.current_version = locked
        agent.status = Agent.Status.PUBLISHED
        agent.agent_type = locked.config.get("agent_type", agent.agent_type)
        agent.published_at = agent.published_at or now
        agent.save(
            update_fields=[
                "current_version",
                "status",
                "agent_type",
                "published_at",
                "updated_at",
            ]
        )
        notified = 0
        if previous_id is not None:
            installers = Install.objects.filter(agent=agent).values_list("user_id", flat=True)
            notified = _notify(
                installers,
                kind=Notification.Kind.AGENT_UPDATED,
                agent=agent,
                version=locked,
                changelog=locked.changelog[:500],
            )
        _notify(
            [agent.developer_id, locked.submitted_by_id or agent.developer_id],
            kind=Notification.Kind.VERSION_APPROVED,
            agent=agent,
            version=locked,
            note=locked.review_note,
        )
        audit_record(
            reviewer,
            action="agent_version.approve",
            obj=locked,
            request=request,
            detail={
                "agent": str(agent.pk),
                "version": locked.version,
                "previous": str(previous_id or ""),
                "notified": notified,
            },
        )
    locked.agent = agent
    return locked


def review_reject(
    reviewer: User, *, version: AgentVersion, note: str, request: Any = None
) -> AgentVersion:
    """Refuse a submitted version; the note tells the developer why (required)."""
    _require_perm(reviewer, "agents.review_agentversion")
    if not (note or "").strip():
        raise ValidationFailed(details={"note": [_("Say why the version is rejected.")]})
    _check_text("note", note)
    with transaction.atomic():
        locked = AgentVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != AgentVersion.Status.SUBMITTED:
            raise Conflict(
                _("Only submitted versions can be rejected; this one is %(status)s.")
                % {"status": locked.get_status_display()}
            )
        agent = locked.agent
        locked.status = AgentVersion.Status.REJECTED
        locked.reviewer = reviewer
        locked.reviewed_at = timezone.now()
        locked.review_note = note.strip()
        locked.save()
        _notify(
            [agent.developer_id, locked.submitted_by_id or agent.developer_id],
            kind=Notification.Kind.VERSION_REJECTED,
            agent=agent,
            version=locked,
            note=locked.review_note,
        )
        audit_record(
            reviewer,
            action="agent_version.reject",
            obj=locked,
            request=request,
            detail={"agent": str(agent.pk), "version": locked.version},
        )
    return locked


# --- installs -----------------------------------------------------------------------------


def agent_install(user: User, *, agent: Agent, request: Any = None) -> Install:
    """Install a store agent. Anything not in the store is NotFound; a second install
    is a Conflict."""
    _require_perm(user, "agents.install_agent")
    with transaction.atomic():
        locked = Agent.objects.select_for_update().filter(pk=agent.pk).first()
        if locked is None or not locked.is_in_store:
            raise NotFound()
        if Install.objects.filter(user=user, agent=locked).exists():
            raise Conflict(_("You have already installed this agent."), code=CODE_ALREADY)
        try:
            with transaction.atomic():
                install = Install.objects.create(
                    user=user, agent=locked, seen_version_id=locked.current_version_id
                )
        except IntegrityError as exc:
            raise Conflict(_("You have already installed this agent."), code=CODE_ALREADY) from exc
        Agent.objects.filter(pk=locked.pk).update(install_count=F("install_count") + 1)
        audit_record(user, action="agent.install", obj=locked, request=request)
    install.agent = locked
    return install


def agent_uninstall(user: User, *, agent: Agent, request: Any = None) -> None:
    with transaction.atomic():
        deleted, _rows = Install.objects.filter(user=user, agent=agent).delete()
        if not deleted:
            raise NotFound(_("This agent is not installed."))
        Agent.objects.filter(pk=agent.pk).update(
            install_count=Greatest(F("install_count") - 1, Value(0))
        )
        audit_record(user, action="agent.uninstall", obj=agent, request=request)


def install_touch(user: User, *, agent_id: Any) -> None:
    """Record a use of an installed agent (called by chats, which have its id, not the
    agent). Usage counters are not audited: they are measurements, not decisions."""
    now = timezone.now()
    Install.objects.filter(user=user, agent_id=agent_id).update(
        usage_count=F("usage_count") + 1,
        last_used_at=now,
        first_used_at=Coalesce(F("first_used_at"), Value(now)),
    )


def install_mark_seen(user: User, *, agent: Agent) -> None:
    """The user has seen the current version: clears the "update available" notice."""
    Install.objects.filter(user=user, agent=agent).update(seen_version_id=agent.current_version_id)


# --- ratings ------------------------------------------------------------------------------


def _rating_counters(agent_id: Any, *, sum_delta: int, count_delta: int) -> None:
    new_sum = F("rating_sum") + sum_delta
    new_count = F("rating_count") + count_delta
    Agent.objects.filter(pk=agent_id).update(
        rating_sum=new_sum,
        rating_count=new_count,
        rating_avg=Round(Cast(new_sum, FloatField()) / Greatest(new_count, Value(1)), 2),
    )


def _check_stars(stars: Any) -> int:
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        raise ValidationFailed(details={"rating": [_("Give 1 to 5 stars.")]})
    return stars


def rating_submit(
    user: User, *, agent: Agent, stars: int, text: str = "", request: Any = None
) -> Rating:
    """Rate an installed store agent once (40301 without an install, 40901 the second
    time — edit with :func:`rating_update`)."""
    _require_perm(user, "agents.rate_agent")
    stars = _check_stars(stars)
    _check_text("text", text)
    if not agent.is_in_store:
        raise NotFound()
    if not Install.objects.filter(user=user, agent=agent).exists():
        raise PermissionDenied(_("Install the agent before rating it."))
    with transaction.atomic():
        if Rating.objects.filter(user=user, agent=agent).exists():
            raise Conflict(_("You have already rated this agent; edit your rating instead."))
        try:
            with transaction.atomic():
                rating = Rating.objects.create(user=user, agent=agent, stars=stars, text=text or "")
        except IntegrityError as exc:
            raise Conflict(_("You have already rated this agent.")) from exc
        _rating_counters(agent.pk, sum_delta=stars, count_delta=1)
        audit_record(
            user,
            action="rating.create",
            obj=rating,
            request=request,
            detail={"agent": str(agent.pk), "stars": stars},
        )
    return rating


def rating_update(
    user: User,
    *,
    agent: Agent,
    stars: int | None = None,
    text: str | None = None,
    request: Any = None,
) -> Rating:
    if stars is not None:
        stars = _check_stars(stars)
    _check_text("text", text)
    with transaction.atomic():
        rating = Rating.objects.select_for_update().filter(user=user, agent=agent).first()
        if rating is None:
            raise NotFound(_("You have not rated this agent."))
        delta = (stars - rating.stars) if stars is not None else 0
        if stars is not None:
            rating.stars = stars
        if text is not None:
            rating.text = text
        rating.save()
        if delta:
            _rating_counters(agent.pk, sum_delta=delta, count_delta=0)
        audit_record(
            user,
            action="rating.update",
            obj=rating,
            request=request,
            detail={"agent": str(agent.pk), "stars": rating.stars},
        )
    return rating


def rating_reply(actor: User, *, rating: Rating, reply: str, request: Any = None) -> Rating:
    """The agent's developer (owner or collaborator) answers a review publicly."""
    if selectors.agent_role(actor, rating.agent) is None:
        raise PermissionDenied(_("Only the agent's developers can reply."))
    _check_text("reply", reply)
    with transaction.atomic():
        rating.developer_reply = (reply or "").strip()
        rating.replied_at = timezone.now() if rating.developer_reply else None
        rating.save(update_fields=["developer_reply", "replied_at"])
        audit_record(actor, action="rating.reply", obj=rating, request=request)
    return rating


# --- notifications ------------------------------------------------------------------------


def notification_mark_read(user: User, *, notification_id: Any) -> Notification:
    if not str(notification_id).isdigit():
        raise NotFound()
    notification = Notification.objects.filter(user=user, pk=int(notification_id)).first()
    if notification is None:
        raise NotFound()
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    return notification


def notifications_mark_all_read(user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )
