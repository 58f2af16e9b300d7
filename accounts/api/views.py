"""Account API views (SPEC §3, §10): thin — parse, call one service or selector, render."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors, services
from accounts.api import serializers as s
from accounts.models import Role, User
from accounts.throttling import LoginThrottle
from agentstore.errors import AuthenticationFailed

DONE = OpenApiResponse(description="Done; `data` is null.")


def _uuid_path(name: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.UUID, OpenApiParameter.PATH)


class IsAdminRole(BasePermission):
    """Only admins (role admin); reviewers, although staff, are refused."""

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.role == Role.ADMIN)


class _PublicView(generics.GenericAPIView):
    """Credential-exchange endpoints: no session (so no CSRF), no token needed."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


# --- auth -------------------------------------------------------------------------------------


class RegisterView(_PublicView):
    serializer_class = s.RegisterSerializer

    @extend_schema(
        operation_id="auth_register",
        request=s.RegisterSerializer,
        responses={201: s.UserSerializer},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_register(**serializer.validated_data, request=request)
        return Response(s.UserSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginView(_PublicView):
    serializer_class = s.LoginSerializer

    @extend_schema(
        operation_id="auth_login",
        request=s.LoginSerializer,
        responses={200: s.TokenPairSerializer},
        tags=["auth"],
        description="`username` accepts a username or an email address. Throttled per "
        "client and login name after repeated failures (42901 with `retry_after`).",
    )
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        login = serializer.validated_data["username"]
        throttle = LoginThrottle(request, login)
        throttle.check()
        try:
            pair = services.auth_login(
                login=login, password=serializer.validated_data["password"], request=request
            )
        except AuthenticationFailed:
            throttle.failed()
            raise
        return Response(s.TokenPairSerializer(pair).data)


class RefreshView(_PublicView):
    serializer_class = s.RefreshTokenSerializer

    @extend_schema(
        operation_id="auth_refresh",
        request=s.RefreshTokenSerializer,
        responses={200: s.TokenPairSerializer},
        tags=["auth"],
        description="Rotates the refresh token; reusing a rotated one ends the session.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = services.token_refresh(
            refresh_token=serializer.validated_data["refresh_token"], request=request
        )
        return Response(s.TokenPairSerializer(pair).data)


class LogoutView(_PublicView):
    serializer_class = s.RefreshTokenSerializer

    @extend_schema(
        operation_id="auth_logout",
        request=s.RefreshTokenSerializer,
        responses={200: DONE},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.token_logout(
            refresh_token=serializer.validated_data["refresh_token"], request=request
        )
        return Response(None)


# --- the caller's own account -----------------------------------------------------------------


class MeView(generics.GenericAPIView):
    serializer_class = s.UserSerializer
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="users_me_retrieve", tags=["users"])
    def get(self, request: Request) -> Response:
        return Response(s.UserSerializer(request.user).data)

    @extend_schema(
        operation_id="users_me_update",
        request=s.UserUpdateSerializer,
        responses={200: s.UserSerializer},
        tags=["users"],
    )
    def put(self, request: Request) -> Response:
        return self._update(request)

    @extend_schema(
        operation_id="users_me_partial_update",
        request=s.UserUpdateSerializer,
        responses={200: s.UserSerializer},
        tags=["users"],
    )
    def patch(self, request: Request) -> Response:
        return self._update(request)

    def _update(self, request: Request) -> Response:
        serializer = s.UserUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(request.user, request=request, **serializer.validated_data)
        return Response(s.UserSerializer(user).data)


class MePasswordView(generics.GenericAPIView):
    serializer_class = s.PasswordChangeSerializer
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="users_me_password",
        request=s.PasswordChangeSerializer,
        responses={200: DONE},
        tags=["users"],
        description="Every refresh and access token of the user stops working.",
    )
    def put(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_change_password(request.user, request=request, **serializer.validated_data)
        return Response(None)


class ApiKeyListCreateView(generics.ListAPIView):
    serializer_class = s.ApiKeySerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list = []

    def get_queryset(self) -> QuerySet:
        return selectors.api_key_list(self.request.user)

    @extend_schema(operation_id="users_me_api_keys_list", tags=["users"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="users_me_api_keys_create",
        request=s.ApiKeyCreateSerializer,
        responses={201: s.ApiKeyCreatedSerializer},
        tags=["users"],
        description="The response holds the key in `key`; it is never shown again.",
    )
    def post(self, request: Request) -> Response:
        serializer = s.ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, raw = services.api_key_create(
            request.user, request=request, **serializer.validated_data
        )
        data = s.ApiKeyCreatedSerializer(key, context={"raw_key": raw}).data
        return Response(data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[_uuid_path("key_id")])
class ApiKeyDetailView(generics.GenericAPIView):
    serializer_class = s.ApiKeySerializer
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="users_me_api_keys_revoke", responses={200: DONE}, tags=["users"])
    def delete(self, request: Request, key_id) -> Response:
        services.api_key_revoke(request.user, key_id=key_id, request=request)
        return Response(None)


# --- admin ------------------------------------------------------------------------------------


class AdminUserFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    is_active = django_filters.BooleanFilter()
    q = django_filters.CharFilter(method="search", label="Search username, email, name")

    class Meta:
        model = User
        fields = ["role", "is_active"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()[:150]
        if not value:
            return queryset
        return queryset.filter(
            Q(username__icontains=value)
            | Q(email__icontains=value)
            | Q(display_name__icontains=value)
        )


class AdminUserListCreateView(generics.ListAPIView):
    serializer_class = s.AdminUserSerializer
    permission_classes = [IsAuthenticated, IsAdminRole]
    filterset_class = AdminUserFilter
    sort_fields = {"username": "username", "created": "date_joined", "last_login": "last_login"}
    default_sort = "username"
    default_sort_order = "asc"

    def get_queryset(self) -> QuerySet:
        return selectors.user_list_for_admin(self.request.user)

    @extend_schema(operation_id="admin_users_list", tags=["admin"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="admin_users_create",
        request=s.AdminUserCreateSerializer,
        responses={201: s.AdminUserSerializer},
        tags=["admin"],
    )
    def post(self, request: Request) -> Response:
        serializer = s.AdminUserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.admin_user_create(
            request.user, request=request, **serializer.validated_data
        )
        user = selectors.user_get_for_admin(request.user, user_id=user.pk)
        return Response(s.AdminUserSerializer(user).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[_uuid_path("user_id")])
class AdminUserDetailView(generics.GenericAPIView):
    serializer_class = s.AdminUserSerializer
    permission_classes = [IsAuthenticated, IsAdminRole]

    @extend_schema(operation_id="admin_users_retrieve", tags=["admin"])
    def get(self, request: Request, user_id) -> Response:
        user = selectors.user_get_for_admin(request.user, user_id=user_id)
        return Response(s.AdminUserSerializer(user).data)

    @extend_schema(
        operation_id="admin_users_update",
        request=s.AdminUserUpdateSerializer,
        responses={200: s.AdminUserSerializer},
        tags=["admin"],
        description="Only the fields sent change; `grants` / `revokes` replace the lists.",
    )
    def put(self, request: Request, user_id) -> Response:
        return self._update(request, user_id)

    @extend_schema(
        operation_id="admin_users_partial_update",
        request=s.AdminUserUpdateSerializer,
        responses={200: s.AdminUserSerializer},
        tags=["admin"],
    )
    def patch(self, request: Request, user_id) -> Response:
        return self._update(request, user_id)

    @extend_schema(operation_id="admin_users_delete", responses={200: DONE}, tags=["admin"])
    def delete(self, request: Request, user_id) -> Response:
        user = selectors.user_get_for_admin(request.user, user_id=user_id)
        services.admin_user_delete(request.user, user=user, request=request)
        return Response(None)

    def _update(self, request: Request, user_id) -> Response:
        user = selectors.user_get_for_admin(request.user, user_id=user_id)
        serializer = s.AdminUserUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.admin_user_update(
            request.user, user=user, request=request, **serializer.validated_data
        )
        user = selectors.user_get_for_admin(request.user, user_id=user_id)
        return Response(s.AdminUserSerializer(user).data)
