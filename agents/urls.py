from __future__ import annotations

from django.urls import path

from agents import views

app_name = "store"
urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("categories/<slug:slug>/", views.category_detail, name="category"),
    path("agents/<str:slug>/", views.agent_detail, name="agent"),
    path("agents/<str:slug>/install/", views.agent_install, name="install"),
    path("agents/<str:slug>/uninstall/", views.agent_uninstall, name="uninstall"),
    path("agents/<str:slug>/rate/", views.agent_rate, name="rate"),
    path("agents/<str:slug>/reviews/<int:rating_id>/reply/", views.review_reply, name="reply"),
    path("my-agents/", views.my_agents, name="my_agents"),
    path("my-agents/notifications/read/", views.notifications_read, name="notifications_read"),
]
