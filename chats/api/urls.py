from __future__ import annotations

from django.urls import path

from chats.api import agui, chats, runs

urlpatterns: list = [
    # runs (issue 4)
    path("agents/<str:agent_id>/run", runs.AgentRunView.as_view(), name="api-agent-run"),
    path("runs", runs.RunListView.as_view(), name="api-runs"),
    path("runs/<str:run_id>", runs.RunDetailView.as_view(), name="api-run"),
    path("runs/<str:run_id>/events", runs.RunEventsView.as_view(), name="api-run-events"),
    path("runs/<str:run_id>/stop", runs.RunStopView.as_view(), name="api-run-stop"),
    # AG-UI over SSE (issue 5)
    path("agent/run", agui.agent_run, name="api-agui-run"),
    path("agent/run/<str:run_id>/stop", agui.AgentRunStopView.as_view(), name="api-agui-stop"),
    # chats (issue 5)
    path("chats", chats.ChatListCreateView.as_view(), name="api-chats"),
    path("chats/<str:chat_id>", chats.ChatDetailView.as_view(), name="api-chat"),
    path("chats/<str:chat_id>/upgrade", chats.ChatUpgradeView.as_view(), name="api-chat-upgrade"),
    path(
        "chats/<str:chat_id>/messages", chats.ChatMessagesView.as_view(), name="api-chat-messages"
    ),
    path(
        "chats/<str:chat_id>/messages/<str:message_id>/regenerate",
        chats.ChatRegenerateView.as_view(),
        name="api-chat-message-regenerate",
    ),
    path(
        "chats/<str:chat_id>/messages/<str:message_id>/edit",
        chats.ChatEditMessageView.as_view(),
        name="api-chat-message-edit",
    ),
    path("chats/<str:chat_id>/branch", chats.ChatBranchView.as_view(), name="api-chat-branch"),
    path("chats/<str:chat_id>/export", chats.ChatExportView.as_view(), name="api-chat-export"),
]
