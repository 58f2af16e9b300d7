"""Reads of runs and their events, scoped to the acting user (STYLE §2).

Another user's run is "not found" (40401), never "forbidden".
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from agents.selectors import parse_uuid
from agentstore.errors import NotFound
from chats import events
from chats.models import Run, RunEvent, RunStep

MAX_EVENTS_PAGE = 1000


def runs_for(user: User) -> QuerySet[Run]:
    """The user's own runs, newest first."""
    if not getattr(user, "is_authenticated", False):
        return Run.objects.none()
    return (
        Run.objects.filter(user=user)
        .select_related("agent", "agent_version", "llm_model")
        .order_by("-created_at", "-id")
    )


def run_get_for(user: User, run_id: Any) -> Run:
    pk = parse_uuid(run_id)
    run = runs_for(user).filter(pk=pk).first() if pk else None
    if run is None:
        raise NotFound()
    return run


def run_events_after(run: Run, *, after: int = 0, limit: int = MAX_EVENTS_PAGE) -> list[dict]:
    """Stored events of ``run`` with ``seq > after`` in order, as they travel (each an
    AG-UI event with ``seq`` and ``runId``). The caller has checked access to ``run``."""
    rows = (
        RunEvent.objects.filter(run_id=run.pk, seq__gt=max(0, int(after)))
        .order_by("seq")
        .values_list("seq", "payload")[: max(1, min(limit, MAX_EVENTS_PAGE))]
    )
    return [events.run_event(run.pk, seq, payload) for seq, payload in rows]


def run_steps(run: Run) -> QuerySet[RunStep]:
    return RunStep.objects.filter(run_id=run.pk).order_by("index")
