from __future__ import annotations

from django.urls import path

from chats.api import runs

urlpatterns: list = [
    # runs (issue 4)
    path("agents/<str:agent_id>/run", runs.AgentRunView.as_view(), name="api-agent-run"),
    path("runs", runs.RunListView.as_view(), name="api-runs"),
    path("runs/<str:run_id>", runs.RunDetailView.as_view(), name="api-run"),
    path("runs/<str:run_id>/events", runs.RunEventsView.as_view(), name="api-run-events"),
    path("runs/<str:run_id>/stop", runs.RunStopView.as_view(), name="api-run-stop"),
]
