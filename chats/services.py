"""Run services (STYLE §2–3): creating one-off runs, stopping runs, delivering callbacks.

Runs execute in the background (``chats.tasks.run_execute_task``), dispatched on commit so
a worker never looks for a row that does not exist yet.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import User
from agents.models import Agent, AgentVersion, Install
from agents.selectors import agent_role, parse_uuid
from agentstore.dispatch import dispatch
from agentstore.errors import Conflict, NotFound, PermissionDenied, RateLimited, ValidationFailed
from chats.models import Run
from chats.runtime import control
from chats.selectors import run_get_for

logger = logging.getLogger(__name__)

MAX_INPUT_CHARS = 20_000


class CallbackFailed(Exception):
    """A callback POST failed in a way worth retrying (connection error, 5xx, 429)."""


def max_concurrent_runs() -> int:
    from integrations.system_settings import setting_get

    value = setting_get("max_concurrent_runs_per_user", settings.MAX_CONCURRENT_RUNS_PER_USER)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return settings.MAX_CONCURRENT_RUNS_PER_USER


def runs_active(user: User) -> QuerySet[Run]:
    """The user's runs in progress (what ``max_concurrent_runs_per_user`` limits)."""
    return Run.objects.filter(user=user, status__in=Run.ACTIVE)


def runs_check_capacity(user: User, *, active: int | None = None) -> None:
    """Refuse a new run while the user has ``max_concurrent_runs_per_user`` active ones
    (``active``: the count, when the caller has read it already)."""
    limit = max_concurrent_runs()
    if active is None:
        active = runs_active(user).count()
    if active >= limit:
        raise RateLimited(
            _("You have %(n)d answers in progress; wait for one to finish.") % {"n": active},
            retry_after=5,
            details={"limit": limit},
        )


def runnable_version_for(user: User, agent_id: Any) -> tuple[Agent, AgentVersion]:
    """The agent and the version ``user`` may run one-off: the current (approved) version
    for a user who installed the agent; for its developers also the newest draft when
    nothing is approved yet. Anything else is not found (or 40301 when the agent is in
    the store but not installed)."""
    pk = parse_uuid(agent_id)
    agent = Agent.objects.select_related("current_version").filter(pk=pk).first() if pk else None
    if agent is None:
        raise NotFound()
    role = agent_role(user, agent)
    if role is None:
        if not agent.is_in_store:
            raise NotFound()
        if not Install.objects.filter(user=user, agent=agent).exists():
            raise PermissionDenied(_("Install this agent to run it."))
    version = agent.current_version
    if version is None and role is not None:
        version = agent.versions.order_by("-created_at", "-id").first()
    if version is None:
        raise Conflict(_("This agent has no version to run yet."))
    return agent, version


def _check_callback_url(url: str) -> None:
    from integrations.outbound import OutboundBlocked, check_url

    try:
        check_url(url)
    except OutboundBlocked as exc:
        raise ValidationFailed(details={"callback_url": [exc.message]}) from None
    except OSError:
        raise ValidationFailed(
            details={"callback_url": [_("The host name could not be resolved.")]}
        ) from None


def run_create_oneoff(
    user: User,
    *,
    agent_id: Any,
    input_text: str,
    callback_url: str = "",
    context: dict[str, Any] | None = None,
    request: Any = None,
) -> Run:
    """A one-off asynchronous run (``POST /agents/{id}/run``); returns the pending run."""
    if not input_text.strip() or len(input_text) > MAX_INPUT_CHARS:
        raise ValidationFailed(
            details={"input": [_("Enter 1 to %(n)d characters.") % {"n": MAX_INPUT_CHARS}]}
        )
    agent, version = runnable_version_for(user, agent_id)
    if callback_url:
        _check_callback_url(callback_url)
    runs_check_capacity(user)
    with transaction.atomic():
        run = Run.objects.create(
            user=user,
            agent=agent,
            agent_version=version,
            source=Run.Source.ONEOFF,
            input={"text": input_text, "context": context or {}},
            callback_url=callback_url,
        )
        audit_record(
            user,
            action="run.create",
            obj=run,
            request=request,
            detail={"agent": str(agent.pk), "version": version.version, "source": run.source},
        )
        transaction.on_commit(lambda: dispatch(_run_task(), str(run.pk)))
    return run


def _run_task() -> Any:
    from chats.tasks import run_execute_task

    return run_execute_task


def run_stop(user: User, *, run_id: Any, request: Any = None) -> Run:
    """Stop a run (SPEC §5.2). Idempotent: stopping a finished run changes nothing.

    - pending: ended at once as ``cancelled`` (RUN_STARTED + RUN_FINISHED cancelled), so
      the queued task finds nothing to do;
    - running: ``cancel_requested_at`` and the stop flag are set; the execution notices
      within ~0.1 s, keeps the partial answer and ends ``cancelled``;
    - paused: the pending approval is dropped, the run becomes ``cancelled``.
    """
    from chats.runtime.recovery import end_run_from_storage

    run = run_get_for(user, run_id)
    if run.is_terminal:
        return run
    now = timezone.now()
    Run.objects.filter(pk=run.pk, cancel_requested_at__isnull=True).update(cancel_requested_at=now)
    control.request_stop(run.pk)
    if run.status == Run.Status.PENDING:
        end_run_from_storage(run, status=Run.Status.CANCELLED, from_statuses=(Run.Status.PENDING,))
    elif run.status == Run.Status.PAUSED:
        Run.objects.filter(pk=run.pk, status=Run.Status.PAUSED).update(
            status=Run.Status.CANCELLED, finished_at=now
        )
    audit_record(user, action="run.stop", obj=run, request=request, detail={"was": run.status})
    run.refresh_from_db()
    return run


def callback_payload(run: Run) -> dict[str, Any]:
    return {
        "run_id": str(run.pk),
        "agent_id": str(run.agent_id),
        "status": run.status,
        "output": run.output,
        "usage": run.usage or {},
        "error": {"code": run.error_code, "message": run.error_message} if run.error_code else None,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def run_callback_deliver(run_id: Any) -> str:
    """POST the result of a finished run to its callback URL through the guarded client.

    Returns ``"sent"``, ``"skipped"`` or ``"refused"`` (blocked address, 4xx); raises
    :class:`CallbackFailed` for failures worth retrying.
    """
    import httpx

    from integrations.outbound import OutboundBlocked, outbound_client

    run = Run.objects.filter(pk=run_id).first()
    if run is None or not run.callback_url or not run.is_terminal:
        return "skipped"
    try:
        with outbound_client(timeout=10.0, follow_redirects=False) as client:
            response = client.post(
                run.callback_url,
                json=callback_payload(run),
                headers={"User-Agent": "AgentStore-Callback/1", "X-AgentStore-Run": str(run.pk)},
            )
    except OutboundBlocked as exc:
        logger.warning("run %s: callback refused: %s", run.pk, exc.message)
        return "refused"
    except httpx.HTTPError as exc:
        raise CallbackFailed(type(exc).__name__) from None
    if response.status_code == 429 or response.status_code >= 500:
        raise CallbackFailed(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        logger.warning("run %s: callback answered HTTP %d", run.pk, response.status_code)
        return "refused"
    return "sent"
