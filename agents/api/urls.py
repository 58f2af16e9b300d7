from __future__ import annotations

from django.urls import path

from agents.api import developer, reviews, store

urlpatterns = [
    # store (end users)
    path("store/agents", store.StoreAgentListView.as_view(), name="api-store-agents"),
    path("store/agents/<str:ref>", store.StoreAgentDetailView.as_view(), name="api-store-agent"),
    path(
        "store/agents/<str:ref>/install",
        store.StoreInstallView.as_view(),
        name="api-store-agent-install",
    ),
    path(
        "store/agents/<str:ref>/ratings",
        store.StoreRatingsView.as_view(),
        name="api-store-agent-ratings",
    ),
    path(
        "store/agents/<str:ref>/ratings/<int:rating_id>/reply",
        store.StoreRatingReplyView.as_view(),
        name="api-store-agent-rating-reply",
    ),
    path("store/categories", store.StoreCategoriesView.as_view(), name="api-store-categories"),
    path("me/installs", store.MyInstallsView.as_view(), name="api-my-installs"),
    path("me/notifications", store.NotificationListView.as_view(), name="api-notifications"),
    path(
        "me/notifications/read-all",
        store.NotificationReadAllView.as_view(),
        name="api-notifications-read-all",
    ),
    path(
        "me/notifications/<str:notification_id>/read",
        store.NotificationReadView.as_view(),
        name="api-notification-read",
    ),
    # developers
    path("agents", developer.AgentListCreateView.as_view(), name="api-agents"),
    path("agents/types", developer.AgentTypesView.as_view(), name="api-agent-types"),
    path(
        "agents/config-schema", developer.ConfigSchemaView.as_view(), name="api-agent-config-schema"
    ),
    path("agents/<str:agent_id>", developer.AgentDetailView.as_view(), name="api-agent"),
    path(
        "agents/<str:agent_id>/archive",
        developer.AgentArchiveView.as_view(),
        name="api-agent-archive",
    ),
    path(
        "agents/<str:agent_id>/duplicate",
        developer.AgentDuplicateView.as_view(),
        name="api-agent-duplicate",
    ),
    path(
        "agents/<str:agent_id>/collaborators",
        developer.CollaboratorsView.as_view(),
        name="api-agent-collaborators",
    ),
    path(
        "agents/<str:agent_id>/collaborators/<str:user_id>",
        developer.CollaboratorDetailView.as_view(),
        name="api-agent-collaborator",
    ),
    path(
        "agents/<str:agent_id>/versions",
        developer.VersionListCreateView.as_view(),
        name="api-agent-versions",
    ),
    path(
        "agents/<str:agent_id>/versions/<str:version_id>",
        developer.VersionDetailView.as_view(),
        name="api-agent-version",
    ),
    path(
        "agents/<str:agent_id>/versions/<str:version_id>/submit",
        developer.VersionSubmitView.as_view(),
        name="api-agent-version-submit",
    ),
    path(
        "agents/<str:agent_id>/versions/<str:version_id>/deprecate",
        developer.VersionDeprecateView.as_view(),
        name="api-agent-version-deprecate",
    ),
    # reviewers
    path("reviews", reviews.ReviewListView.as_view(), name="api-reviews"),
    path("reviews/<str:version_id>", reviews.ReviewDetailView.as_view(), name="api-review"),
    path(
        "reviews/<str:version_id>/approve",
        reviews.ReviewApproveView.as_view(),
        name="api-review-approve",
    ),
    path(
        "reviews/<str:version_id>/reject",
        reviews.ReviewRejectView.as_view(),
        name="api-review-reject",
    ),
]
