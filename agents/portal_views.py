"""The developer portal (SPEC §4.3): agents, listings, draft versions, submission, publish
history and statistics. Developers only; another developer's agent is a 404.

Every write is one service call; domain errors become form errors or page messages.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agents import selectors, services, web_selectors
from agents.config import default_config, validate_config
from agents.forms import (
    AgentCreateForm,
    AgentListingForm,
    NewVersionForm,
    PersonaCheckForm,
    SubmitForm,
    VersionConfigForm,
    config_json,
)
from agents.models import AgentVersion
from agentstore.errors import DomainError, NotFound, ValidationFailed

PAGE_SIZE = 20
STAT_PERIODS = (30, 90, 365)
STAT_DAYS = 90


def developer_required(view):
    """Signed-in developers only: anonymous users go to the login page, others get 403."""

    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.has_perm("agents.add_agent"):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _agent_or_404(request: HttpRequest, agent_id: Any):
    try:
        return selectors.agent_for_developer(request.user, agent_id)
    except NotFound as exc:
        raise Http404 from exc


def _version_or_404(request: HttpRequest, agent_id: Any, version_id: Any) -> AgentVersion:
    try:
        return selectors.version_for_developer(request.user, agent_id, version_id)
    except NotFound as exc:
        raise Http404 from exc


def _problem_text(problem: Any) -> str:
    if isinstance(problem, dict):
        path = problem.get("path") or ""
        return f"{path}: {problem.get('message', '')}" if path else str(problem.get("message"))
    return str(problem)


def _errors_to_form(form, exc: DomainError, *, config_field: str | None = None) -> None:
    """Put a service's ValidationFailed details on the matching form fields."""
    details = exc.details if isinstance(exc.details, dict) else {}
    if not details:
        form.add_error(None, exc.message)
        return
    for key, problems in details.items():
        target = config_field if key == "config" and config_field else key
        field = target if target in form.fields else None
        for problem in problems if isinstance(problems, list) else [problems]:
            form.add_error(field, _problem_text(problem))


def _message_error(request: HttpRequest, exc: DomainError) -> None:
    details = exc.details if isinstance(exc.details, dict) else {}
    texts = [
        _problem_text(problem)
        for problems in details.values()
        for problem in (problems if isinstance(problems, list) else [problems])
    ]
    messages.error(request, " ".join([exc.message, *texts]) if texts else exc.message)


def _categories() -> list[dict[str, Any]]:
    return web_selectors.flat_categories(selectors.category_tree())


# --- agents -------------------------------------------------------------------------------


@developer_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    agents = web_selectors.portal_agents(request.user)
    return render(
        request,
        "portal/index.html",
        {
            "nav_active": "portal",
            "page_obj": Paginator(agents, PAGE_SIZE).get_page(request.GET.get("page")),
            "templates": web_selectors.builtin_templates(),
        },
    )


@developer_required
@require_http_methods(["GET", "POST"])
def agent_new(request: HttpRequest) -> HttpResponse:
    form = AgentCreateForm(request.POST or None, categories=_categories())
    if request.method == "POST" and form.is_valid():
        data = form.service_data()
        agent_type = data.pop("agent_type")
        try:
            # One page action, two services: the listing and its first draft version.
            with transaction.atomic():
                agent = services.agent_create(
                    request.user, data={**data, "agent_type": agent_type}, request=request
                )
                version = services.agent_version_create(
                    request.user,
                    agent=agent,
                    version="0.1.0",
                    config=default_config(agent_type),
                    request=request,
                )
        except ValidationFailed as exc:
            _errors_to_form(form, exc)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                _("%(name)s is created. Configure its first version.") % {"name": agent.name},
            )
            return redirect("portal:version", agent_id=agent.pk, version_id=version.pk)
    return render(request, "portal/agent_form.html", {"nav_active": "portal", "form": form})


@developer_required
@require_GET
def agent_overview(request: HttpRequest, agent_id) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    versions = selectors.versions_for_developer(request.user, agent)
    latest = versions.first()
    return render(
        request,
        "portal/agent.html",
        {
            "nav_active": "portal",
            "tab": "overview",
            "agent": agent,
            "role": selectors.agent_role(request.user, agent),
            "versions": Paginator(versions, PAGE_SIZE).get_page(request.GET.get("page")),
            "new_version_form": NewVersionForm(
                initial={"version": _next_version(latest.version) if latest else "0.1.0"}
            ),
        },
    )


def _next_version(version: str) -> str:
    """A suggestion: the next minor version (1.2.3 → 1.3.0)."""
    core = version.split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return ""
    return f"{parts[0]}.{int(parts[1]) + 1}.0"


@developer_required
@require_http_methods(["GET", "POST"])
def agent_edit(request: HttpRequest, agent_id) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    form = AgentListingForm(
        request.POST or None,
        initial=AgentListingForm.initial_for(agent),
        categories=_categories(),
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.agent_update(
                request.user, agent=agent, data=form.service_data(), request=request
            )
        except ValidationFailed as exc:
            _errors_to_form(form, exc)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("The listing is saved."))
            return redirect("portal:agent", agent_id=agent.pk)
    return render(
        request,
        "portal/agent_form.html",
        {"nav_active": "portal", "tab": "listing", "agent": agent, "form": form},
    )


@developer_required
@require_POST
def agent_archive(request: HttpRequest, agent_id) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    try:
        services.agent_archive(request.user, agent=agent, request=request)
    except DomainError as exc:
        _message_error(request, exc)
    else:
        messages.success(request, _("%(name)s is archived.") % {"name": agent.name})
    return redirect("portal:agent", agent_id=agent.pk)


@developer_required
@require_POST
def agent_delete(request: HttpRequest, agent_id) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    try:
        services.agent_delete(request.user, agent=agent, request=request)
    except DomainError as exc:
        _message_error(request, exc)
        return redirect("portal:agent", agent_id=agent.pk)
    messages.success(request, _("%(name)s is deleted.") % {"name": agent.name})
    return redirect("portal:index")


@developer_required
@require_POST
def agent_duplicate(request: HttpRequest, agent_id) -> HttpResponse:
    """Duplicate one of the developer's agents or any store agent (built-ins included)."""
    try:
        source = selectors.agent_for_developer(request.user, agent_id)
    except NotFound:
        try:
            source = selectors.store_agent(agent_id)
        except NotFound as exc:
            raise Http404 from exc
    try:
        agent = services.agent_duplicate(request.user, source=source, request=request)
    except DomainError as exc:
        _message_error(request, exc)
        return redirect("portal:index")
    messages.success(request, _("%(name)s is created from a copy.") % {"name": agent.name})
    return redirect("portal:agent", agent_id=agent.pk)


# --- versions -----------------------------------------------------------------------------


@developer_required
@require_POST
def version_new(request: HttpRequest, agent_id) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    form = NewVersionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("version", [])))
        return redirect("portal:agent", agent_id=agent.pk)
    try:
        version = services.agent_version_create(
            request.user, agent=agent, version=form.cleaned_data["version"], request=request
        )
    except DomainError as exc:
        _message_error(request, exc)
        return redirect("portal:agent", agent_id=agent.pk)
    messages.success(request, _("Draft %(version)s is created.") % {"version": version.version})
    return redirect("portal:version", agent_id=agent.pk, version_id=version.pk)


@developer_required
@require_http_methods(["GET", "POST"])
def version_detail(request: HttpRequest, agent_id, version_id) -> HttpResponse:
    """A draft is edited here; any other version is shown read-only with its review."""
    version = _version_or_404(request, agent_id, version_id)
    agent = version.agent
    is_draft = version.status == AgentVersion.Status.DRAFT
    form = None
    if is_draft:
        form = VersionConfigForm(
            request.POST if request.method == "POST" else None,
            developer=request.user,
            version=version,
        )
        if request.method == "POST" and form.is_valid():
            data = {
                "version": form.cleaned_data["version"],
                "changelog": form.cleaned_data["changelog"],
                "config": form.build_config(),
            }
            try:
                services.agent_version_update(
                    request.user, version=version, data=data, request=request
                )
            except ValidationFailed as exc:
                _errors_to_form(form, exc, config_field="config_json")
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, _("The draft is saved."))
                return redirect("portal:version", agent_id=agent.pk, version_id=version.pk)
    elif request.method == "POST":
        messages.error(request, _("Only drafts can be edited; create a new version instead."))
        return redirect("portal:version", agent_id=agent.pk, version_id=version.pk)
    return render(
        request,
        "portal/version.html",
        {
            "nav_active": "portal",
            "tab": "versions",
            "agent": agent,
            "version": version,
            "form": form,
            "is_draft": is_draft,
            "problems": validate_config(version.config, developer=agent.developer)
            if is_draft
            else [],
            "submit_form": SubmitForm(initial={"changelog": version.changelog}),
            "config_text": config_json(version.config),
            **_persona_check_context(version, is_draft=is_draft),
        },
    )


# --- persona check -------------------------------------------------------------------------
# The check runs models, so its service lives in chats (chats.persona_check); agents must not
# import chats at module level (accounts ← integrations ← knowledge ← agents ← chats), hence
# the imports inside these functions.


def _persona_check_context(version: AgentVersion, *, is_draft: bool) -> dict[str, Any]:
    from chats.persona_check import persona_check_summary

    return {
        "persona": persona_check_summary(version),
        "persona_form": PersonaCheckForm() if is_draft else None,
    }


@developer_required
@require_http_methods(["GET", "POST"])
def version_persona_check(request: HttpRequest, agent_id, version_id) -> HttpResponse:
    """POST: start a persona check of the draft. GET: the panel alone (the page polls it
    while a check is pending or running)."""
    version = _version_or_404(request, agent_id, version_id)
    is_draft = version.status == AgentVersion.Status.DRAFT
    if request.method == "GET":
        return render(
            request,
            "portal/_persona_check.html",
            {
                "agent": version.agent,
                "version": version,
                "is_draft": is_draft,
                **_persona_check_context(version, is_draft=is_draft),
            },
        )
    from chats.persona_check import persona_check_run

    form = PersonaCheckForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("prompts", [])))
    else:
        try:
            persona_check_run(
                request.user, version=version, prompts=form.prompt_list(), request=request
            )
        except NotFound as exc:
            raise Http404 from exc
        except DomainError as exc:
            _message_error(request, exc)
        else:
            messages.success(request, _("The persona check has started."))
    url = reverse("portal:version", kwargs={"agent_id": version.agent.pk, "version_id": version.pk})
    return redirect(f"{url}#persona-check")


@developer_required
@require_POST
def version_submit(request: HttpRequest, agent_id, version_id) -> HttpResponse:
    version = _version_or_404(request, agent_id, version_id)
    form = SubmitForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Describe what changed in the changelog."))
    else:
        try:
            services.agent_version_submit(
                request.user,
                version=version,
                changelog=form.cleaned_data["changelog"],
                request=request,
            )
        except DomainError as exc:
            _message_error(request, exc)
        else:
            messages.success(
                request,
                _("Version %(version)s is submitted for review.") % {"version": version.version},
            )
    return redirect("portal:version", agent_id=version.agent.pk, version_id=version.pk)


@developer_required
@require_POST
def version_deprecate(request: HttpRequest, agent_id, version_id) -> HttpResponse:
    version = _version_or_404(request, agent_id, version_id)
    try:
        services.agent_version_deprecate(request.user, version=version, request=request)
    except DomainError as exc:
        _message_error(request, exc)
    else:
        messages.success(
            request, _("Version %(version)s is deprecated.") % {"version": version.version}
        )
    return redirect("portal:agent", agent_id=version.agent.pk)


@developer_required
@require_POST
def version_delete(request: HttpRequest, agent_id, version_id) -> HttpResponse:
    version = _version_or_404(request, agent_id, version_id)
    try:
        services.agent_version_delete(request.user, version=version, request=request)
    except DomainError as exc:
        _message_error(request, exc)
        return redirect("portal:version", agent_id=version.agent.pk, version_id=version.pk)
    messages.success(request, _("Draft %(version)s is deleted.") % {"version": version.version})
    return redirect("portal:agent", agent_id=version.agent.pk)


# --- statistics ---------------------------------------------------------------------------


@developer_required
@require_GET
def agent_stats(request: HttpRequest, agent_id) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    days = request.GET.get("days", "")
    days = int(days) if days.isdigit() and int(days) in STAT_PERIODS else STAT_DAYS
    stats = web_selectors.agent_statistics(agent, days=days)
    labels = {
        "installs": _("Installs"),
        "ratings": _("Ratings"),
        "chats": _("Chats"),
        "messages": _("Messages"),
    }
    activity = [
        {"name": str(labels.get(series["key"], series["key"])), "values": series["values"]}
        for series in stats["activity"]
    ]
    return render(
        request,
        "portal/stats.html",
        {
            "nav_active": "portal",
            "tab": "stats",
            "agent": agent,
            "stats": stats,
            "days": days,
            "periods": STAT_PERIODS,
            "has_chats": "chats" in stats["totals"],
            "activity_names": [series["name"] for series in activity],
            "activity_rows": list(
                zip(stats["labels"], *[series["values"] for series in activity], strict=True)
            ),
            "chart_activity": {"labels": stats["labels"], "series": activity},
            "chart_rating": {
                "labels": stats["labels"],
                "series": [{"name": _("Average rating"), "values": stats["rating_avg"]}],
            },
            "chart_histogram": {
                "labels": [f"{stars}★" for stars in range(1, 6)],
                "series": [
                    {
                        "name": _("Ratings"),
                        "values": [stats["histogram"][stars] for stars in range(1, 6)],
                    }
                ],
            },
        },
    )
