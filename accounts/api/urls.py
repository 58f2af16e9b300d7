from __future__ import annotations

from django.urls import path

from accounts.api import views

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="api-auth-register"),
    path("auth/login", views.LoginView.as_view(), name="api-auth-login"),
    path("auth/refresh", views.RefreshView.as_view(), name="api-auth-refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="api-auth-logout"),
    path("users/me", views.MeView.as_view(), name="api-users-me"),
    path("users/me/password", views.MePasswordView.as_view(), name="api-users-me-password"),
    path("users/me/api-keys", views.ApiKeyListCreateView.as_view(), name="api-api-keys"),
    path(
        "users/me/api-keys/<str:key_id>",
        views.ApiKeyDetailView.as_view(),
        name="api-api-key-detail",
    ),
    path("admin/users", views.AdminUserListCreateView.as_view(), name="api-admin-users"),
    path(
        "admin/users/<str:user_id>",
        views.AdminUserDetailView.as_view(),
        name="api-admin-user-detail",
    ),
]
