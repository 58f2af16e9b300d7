from __future__ import annotations

from django.urls import path

from chats import views

app_name = "chats"
urlpatterns = [
    path("", views.chat_index, name="index"),
    path("new", views.chat_new, name="new"),
    path("new/", views.chat_new),
    path("test/<uuid:agent_id>/<uuid:version_id>/", views.test_chat_new, name="test_new"),
    path("<uuid:chat_id>/", views.chat_detail, name="detail"),
]
