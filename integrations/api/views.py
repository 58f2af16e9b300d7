"""Integration API views (SPEC §6.1, §10): thin — parse, call one service or selector, render."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from integrations import selectors, services
from integrations.api import serializers as s
from integrations.models import LLMModel, ProviderType, UserProviderKey

DONE = OpenApiResponse(description="Done; `data` is null.")
MODEL_ID = OpenApiParameter("model_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
PROVIDER_TYPE = OpenApiParameter(
    "provider_type", OpenApiTypes.STR, OpenApiParameter.PATH, enum=ProviderType.values
)


class IsLLMAdminOrReadOnly(BasePermission):
    """Everyone signed in may read; only admins may write (others get 40301)."""

    def has_permission(self, request: Request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return selectors.is_llm_admin(request.user)


class IsLLMAdmin(BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        return selectors.is_llm_admin(request.user)


def _model_out(request: Request, model) -> dict:
    if selectors.is_llm_admin(request.user):
        return s.LLMModelAdminSerializer(model).data
    return s.LLMModelSerializer(model).data


class LLMModelListCreateView(GenericAPIView):
    permission_classes = [IsAuthenticated, IsLLMAdminOrReadOnly]
    serializer_class = s.LLMModelWriteSerializer
    sort_fields = {
        "display_name": "display_name",
        "provider_type": "provider_type",
        "created_at": "created_at",
    }

    def get_queryset(self):
        user = self.request.user
        if selectors.is_llm_admin(user):
            return selectors.llm_models_for_admin(user)
        return selectors.llm_models_for(user)

    def get_serializer_class(self):
        if self.request.method in SAFE_METHODS:
            if selectors.is_llm_admin(self.request.user):
                return s.LLMModelAdminSerializer
            return s.LLMModelSerializer
        return s.LLMModelWriteSerializer

    @extend_schema(
        operation_id="llm_models_list",
        responses={200: s.LLMModelSerializer(many=True)},
        tags=["llm-models"],
        description="The models the caller may use (admins: every model, with endpoint, "
        "extra config and access rules). Keys never leave the server: `has_api_key` only.",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        serializer = self.get_serializer_class()(page, many=True)
        return self.get_paginated_response(serializer.data)

    @extend_schema(
        operation_id="llm_models_create",
        request=s.LLMModelWriteSerializer,
        responses={201: s.LLMModelAdminSerializer},
        tags=["llm-models"],
    )
    def post(self, request: Request) -> Response:
        serializer = s.LLMModelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = services.llm_model_create(
            request.user, **serializer.validated_data, request=request
        )
        return Response(s.LLMModelAdminSerializer(model).data, status=status.HTTP_201_CREATED)


class LLMModelDetailView(GenericAPIView):
    permission_classes = [IsAuthenticated, IsLLMAdminOrReadOnly]
    queryset = LLMModel.objects.none()  # schema only; reads go through selectors
    serializer_class = s.LLMModelWriteSerializer

    def _get(self, request: Request, model_id: str):
        if selectors.is_llm_admin(request.user):
            return selectors.llm_model_get_for_admin(request.user, model_id=model_id)
        return selectors.llm_model_get_for(request.user, model_id=model_id)

    @extend_schema(
        operation_id="llm_models_retrieve",
        parameters=[MODEL_ID],
        responses={200: s.LLMModelSerializer},
        tags=["llm-models"],
    )
    def get(self, request: Request, model_id: str) -> Response:
        return Response(_model_out(request, self._get(request, model_id)))

    def _update(self, request: Request, model_id: str, *, partial: bool) -> Response:
        model = self._get(request, model_id)
        serializer = s.LLMModelWriteSerializer(model, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        model = services.llm_model_update(
            request.user, model=model, **serializer.validated_data, request=request
        )
        return Response(s.LLMModelAdminSerializer(model).data)

    @extend_schema(
        operation_id="llm_models_update",
        parameters=[MODEL_ID],
        request=s.LLMModelWriteSerializer,
        responses={200: s.LLMModelAdminSerializer},
        tags=["llm-models"],
    )
    def put(self, request: Request, model_id: str) -> Response:
        return self._update(request, model_id, partial=False)

    @extend_schema(
        operation_id="llm_models_partial_update",
        parameters=[MODEL_ID],
        request=s.LLMModelWriteSerializer,
        responses={200: s.LLMModelAdminSerializer},
        tags=["llm-models"],
    )
    def patch(self, request: Request, model_id: str) -> Response:
        return self._update(request, model_id, partial=True)

    @extend_schema(
        operation_id="llm_models_destroy",
        parameters=[MODEL_ID],
        responses={200: DONE},
        tags=["llm-models"],
        description="Refused with 40901 for the default model and for a model agent "
        "versions use (deactivate it instead).",
    )
    def delete(self, request: Request, model_id: str) -> Response:
        services.llm_model_delete(request.user, model=self._get(request, model_id), request=request)
        return Response(None)


class LLMModelTestView(GenericAPIView):
    permission_classes = [IsAuthenticated, IsLLMAdmin]
    serializer_class = s.LLMModelTestSerializer

    @extend_schema(
        operation_id="llm_models_test_params",
        request=s.LLMModelTestSerializer,
        responses={200: s.ConnectionTestResultSerializer},
        tags=["llm-models"],
        description="Test unsaved settings with the provider's own request and headers. "
        "A failed test is still a 200 with `success: false` and a readable `error`.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.llm_model_test(
            request.user, params=serializer.validated_data, request=request
        )
        return Response(result)


class LLMModelSavedTestView(GenericAPIView):
    permission_classes = [IsAuthenticated, IsLLMAdmin]
    queryset = LLMModel.objects.none()  # schema only; reads go through selectors

    @extend_schema(
        operation_id="llm_models_test",
        parameters=[MODEL_ID],
        request=None,
        responses={200: s.ConnectionTestResultSerializer},
        tags=["llm-models"],
    )
    def post(self, request: Request, model_id: str) -> Response:
        model = selectors.llm_model_get_for_admin(request.user, model_id=model_id)
        return Response(services.llm_model_test(request.user, model=model, request=request))


class ProviderKeyListView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    queryset = UserProviderKey.objects.none()  # schema only; reads go through selectors
    serializer_class = s.ProviderKeySerializer
    pagination_class = None

    @extend_schema(
        operation_id="provider_keys_list",
        responses={200: s.ProviderKeySerializer(many=True)},
        tags=["users"],
    )
    def get(self, request: Request) -> Response:
        keys = selectors.provider_keys_for(request.user)
        return Response(s.ProviderKeySerializer(keys, many=True).data)


class ProviderKeyDetailView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    queryset = UserProviderKey.objects.none()  # schema only; reads go through selectors
    serializer_class = s.ProviderKeyWriteSerializer

    @extend_schema(
        operation_id="provider_keys_retrieve",
        parameters=[PROVIDER_TYPE],
        responses={200: s.ProviderKeySerializer},
        tags=["users"],
    )
    def get(self, request: Request, provider_type: str) -> Response:
        key = selectors.provider_key_get(request.user, provider_type=provider_type)
        return Response(s.ProviderKeySerializer(key).data)

    @extend_schema(
        operation_id="provider_keys_set",
        parameters=[PROVIDER_TYPE],
        request=s.ProviderKeyWriteSerializer,
        responses={200: s.ProviderKeySerializer},
        tags=["users"],
        description="Store your own key for a provider type (encrypted; replaces any "
        "previous one). Runs then use it instead of the platform's key.",
    )
    def put(self, request: Request, provider_type: str) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = services.user_provider_key_set(
            request.user, provider_type=provider_type, **serializer.validated_data, request=request
        )
        return Response(s.ProviderKeySerializer(key).data)

    @extend_schema(
        operation_id="provider_keys_destroy",
        parameters=[PROVIDER_TYPE],
        responses={200: DONE},
        tags=["users"],
    )
    def delete(self, request: Request, provider_type: str) -> Response:
        services.user_provider_key_delete(
            request.user, provider_type=provider_type, request=request
        )
        return Response(None)
