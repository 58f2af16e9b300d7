from __future__ import annotations

from django.urls import path

from agents import views

app_name = "store"
urlpatterns = [
    path("", views.home, name="home"),
]
