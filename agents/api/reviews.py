"""Review API for reviewers (the Django admin offers the same queue with a diff view)."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services
from agents.api import serializers as s
from agents.models import AgentVersion
from agents.review_diff import config_diff


class IsReviewer(BasePermission):
    message = _("Only reviewers can do this.")

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("agents.review_agentversion"))


class ReviewFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[c for c in AgentVersion.Status.choices if c[0] != AgentVersion.Status.DRAFT]
    )
    check_status = django_filters.ChoiceFilter(choices=AgentVersion.CheckStatus.choices)

    class Meta:
        model = AgentVersion
        fields = ["status", "check_status"]


class ReviewListView(GenericAPIView):
    """The review queue: submitted versions first (oldest first), then decided ones."""

    permission_classes = [IsAuthenticated, IsReviewer]
    serializer_class = s.ReviewItemSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = ReviewFilter

    def get_queryset(self):
        return selectors.review_queue()

    @extend_schema(tags=["reviews"], responses=s.ReviewItemSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ReviewDetailView(GenericAPIView):
    permission_classes = [IsAuthenticated, IsReviewer]
    serializer_class = s.ReviewItemSerializer

    @extend_schema(tags=["reviews"])
    def get(self, request: Request, version_id: str) -> Response:
        version = selectors.review_item(version_id)
        data = self.get_serializer(version).data
        current = version.agent.current_version
        base = current.config if current and current.pk != version.pk else None
        data["diff"] = config_diff(
            base,
            version.config,
            from_label=current.version if base else "",
            to_label=version.version,
        )
        return Response(data)


class ReviewApproveView(GenericAPIView):
    permission_classes = [IsAuthenticated, IsReviewer]
    serializer_class = s.ReviewItemSerializer

    @extend_schema(tags=["reviews"], request=s.ReviewDecisionSerializer)
    def post(self, request: Request, version_id: str) -> Response:
        version = selectors.review_item(version_id)
        body = s.ReviewDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.review_approve(
            request.user, version=version, note=body.validated_data["note"], request=request
        )
        return Response(self.get_serializer(selectors.review_item(version_id)).data)


class ReviewRejectView(GenericAPIView):
    permission_classes = [IsAuthenticated, IsReviewer]
    serializer_class = s.ReviewItemSerializer

    @extend_schema(tags=["reviews"], request=s.ReviewDecisionSerializer)
    def post(self, request: Request, version_id: str) -> Response:
        version = selectors.review_item(version_id)
        body = s.ReviewDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.review_reject(
            request.user, version=version, note=body.validated_data["note"], request=request
        )
        return Response(self.get_serializer(selectors.review_item(version_id)).data)
