from __future__ import annotations

from django.urls import path

from agents import portal_views as views

app_name = "portal"
urlpatterns = [
    path("", views.index, name="index"),
    path("agents/new/", views.agent_new, name="agent_new"),
    path("agents/<uuid:agent_id>/", views.agent_overview, name="agent"),
    path("agents/<uuid:agent_id>/listing/", views.agent_edit, name="agent_edit"),
    path("agents/<uuid:agent_id>/archive/", views.agent_archive, name="agent_archive"),
    path("agents/<uuid:agent_id>/delete/", views.agent_delete, name="agent_delete"),
    path("agents/<uuid:agent_id>/duplicate/", views.agent_duplicate, name="duplicate"),
    path("agents/<uuid:agent_id>/stats/", views.agent_stats, name="stats"),
    path("agents/<uuid:agent_id>/versions/new/", views.version_new, name="version_new"),
    path(
        "agents/<uuid:agent_id>/versions/<uuid:version_id>/", views.version_detail, name="version"
    ),
    path(
        "agents/<uuid:agent_id>/versions/<uuid:version_id>/submit/",
        views.version_submit,
        name="version_submit",
    ),
    path(
        "agents/<uuid:agent_id>/versions/<uuid:version_id>/persona-check/",
        views.version_persona_check,
        name="version_persona_check",
    ),
    path(
        "agents/<uuid:agent_id>/versions/<uuid:version_id>/deprecate/",
        views.version_deprecate,
        name="version_deprecate",
    ),
    path(
        "agents/<uuid:agent_id>/versions/<uuid:version_id>/delete/",
        views.version_delete,
        name="version_delete",
    ),
]
