"""Developer API: agents, versions, submission, collaborators. Everything is scoped to
agents the caller owns or collaborates on; anything else is 40401."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from agents import selectors, services
from agents.api import serializers as s
from agents.config import CONFIG_SCHEMA, DEFAULT_CONFIG
from agents.models import Agent, AgentType, AgentVersion
from agentstore.api.ordering import SortByFilter
from agentstore.errors import NotFound

TYPE_DESCRIPTIONS = {
    AgentType.REACT: "Reasons and acts in a loop, calling tools until it can answer.",
    AgentType.DIALOG: "Converses; retrieves knowledge before each answer when configured.",
    AgentType.AGENTIC_RAG: "Decides itself when and what to retrieve, and cites sources.",
    AgentType.PLAN_EXECUTE: "Writes a plan first, then executes it step by step.",
    AgentType.REFLEXION: "Drafts, critiques its draft, and answers with the improved version.",
}


class DeveloperAgentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Agent.Status.choices)

    class Meta:
        model = Agent
        fields = ["status"]


class AgentListCreateView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.DeveloperAgentSerializer
    filter_backends = [DjangoFilterBackend, SortByFilter]
    filterset_class = DeveloperAgentFilter
    sort_fields = {"name": "name", "created_at": "created_at", "updated_at": "updated_at"}
    default_sort = "updated_at"

    def get_queryset(self):
        return selectors.agents_for_developer(self.request.user)

    @extend_schema(tags=["developer"], responses=s.DeveloperAgentSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(tags=["developer"], request=s.AgentWriteSerializer)
    def post(self, request: Request) -> Response:
        body = s.AgentWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        agent = services.agent_create(request.user, data=body.validated_data, request=request)
        agent = selectors.agent_for_developer(request.user, agent.pk)
        return Response(self.get_serializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetailView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.DeveloperAgentSerializer

    def _render(self, request: Request, agent: Agent) -> Response:
        data = self.get_serializer(agent).data
        data["role"] = selectors.agent_role(request.user, agent)
        return Response(data)

    @extend_schema(tags=["developer"])
    def get(self, request: Request, agent_id: str) -> Response:
        return self._render(request, selectors.agent_for_developer(request.user, agent_id))

    @extend_schema(tags=["developer"], request=s.AgentWriteSerializer)
    def put(self, request: Request, agent_id: str) -> Response:
        agent = selectors.agent_for_developer(request.user, agent_id)
        body = s.AgentWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.agent_update(request.user, agent=agent, data=body.validated_data, request=request)
        return self._render(request, selectors.agent_for_developer(request.user, agent_id))

    patch = put

    @extend_schema(tags=["developer"], responses={200: None})
    def delete(self, request: Request, agent_id: str) -> Response:
        agent = selectors.agent_for_developer(request.user, agent_id)
        services.agent_delete(request.user, agent=agent, request=request)
        return Response(None)


class AgentArchiveView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.DeveloperAgentSerializer

    @extend_schema(tags=["developer"], request=None)
    def post(self, request: Request, agent_id: str) -> Response:
        agent = selectors.agent_for_developer(request.user, agent_id)
        agent = services.agent_archive(request.user, agent=agent, request=request)
        return Response(self.get_serializer(agent).data)


class AgentDuplicateView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.DeveloperAgentSerializer

    @extend_schema(tags=["developer"], request=s.DuplicateSerializer)
    def post(self, request: Request, agent_id: str) -> Response:
        body = s.DuplicateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            source = selectors.agent_for_developer(request.user, agent_id)
        except NotFound:
            source = selectors.store_agent(agent_id)
        copy = services.agent_duplicate(
            request.user, source=source, name=body.validated_data.get("name"), request=request
        )
        copy = selectors.agent_for_developer(request.user, copy.pk)
        return Response(self.get_serializer(copy).data, status=status.HTTP_201_CREATED)


class AgentTypesView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    pagination_class = None

    @extend_schema(
        tags=["developer"], responses={200: {"type": "array", "items": {"type": "object"}}}
    )
    def get(self, request: Request) -> Response:
        return Response(
            [
                {"value": value, "label": str(label), "description": TYPE_DESCRIPTIONS[value]}
                for value, label in AgentType.choices
            ]
        )


class ConfigSchemaView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    pagination_class = None

    @extend_schema(tags=["developer"], responses={200: {"type": "object"}})
    def get(self, request: Request) -> Response:
        return Response({"schema": CONFIG_SCHEMA, "defaults": DEFAULT_CONFIG})


class VersionListCreateView(GenericAPIView):
    queryset = AgentVersion.objects.none()  # for the schema generator only
    permission_classes = [IsAuthenticated]
    serializer_class = s.VersionSerializer

    @extend_schema(tags=["developer"], responses=s.VersionSerializer(many=True))
    def get(self, request: Request, agent_id: str) -> Response:
        agent = selectors.agent_for_developer(request.user, agent_id)
        page = self.paginate_queryset(selectors.versions_for_developer(request.user, agent))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(tags=["developer"], request=s.VersionWriteSerializer)
    def post(self, request: Request, agent_id: str) -> Response:
        agent = selectors.agent_for_developer(request.user, agent_id)
        body = s.VersionWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.agent_version_create(
            request.user,
            agent=agent,
            version=body.validated_data["version"],
            changelog=body.validated_data.get("changelog", ""),
            config=body.validated_data.get("config"),
            request=request,
        )
        return Response(self.get_serializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.VersionSerializer

    @extend_schema(tags=["developer"])
    def get(self, request: Request, agent_id: str, version_id: str) -> Response:
        version = selectors.version_for_developer(request.user, agent_id, version_id)
        return Response(self.get_serializer(version).data)

    @extend_schema(tags=["developer"], request=s.VersionWriteSerializer)
    def put(self, request: Request, agent_id: str, version_id: str) -> Response:
        version = selectors.version_for_developer(request.user, agent_id, version_id)
        body = s.VersionWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        version = services.agent_version_update(
            request.user, version=version, data=body.validated_data, request=request
        )
        return Response(self.get_serializer(version).data)

    patch = put

    @extend_schema(tags=["developer"], responses={200: None})
    def delete(self, request: Request, agent_id: str, version_id: str) -> Response:
        version = selectors.version_for_developer(request.user, agent_id, version_id)
        services.agent_version_delete(request.user, version=version, request=request)
        return Response(None)


class VersionSubmitView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.VersionSerializer

    @extend_schema(tags=["developer"], request=s.SubmitSerializer)
    def post(self, request: Request, agent_id: str, version_id: str) -> Response:
        version = selectors.version_for_developer(request.user, agent_id, version_id)
        body = s.SubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.agent_version_submit(
            request.user,
            version=version,
            changelog=body.validated_data.get("changelog"),
            request=request,
        )
        return Response(self.get_serializer(version).data)


class VersionDeprecateView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.VersionSerializer

    @extend_schema(tags=["developer"], request=None)
    def post(self, request: Request, agent_id: str, version_id: str) -> Response:
        version = selectors.version_for_developer(request.user, agent_id, version_id)
        version = services.agent_version_deprecate(request.user, version=version, request=request)
        return Response(self.get_serializer(version).data)


def _person_list(users) -> list[dict]:
    return [{"id": str(u.pk), "username": u.username, "display_name": str(u)} for u in users]


class CollaboratorsView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = s.CollaboratorSerializer
    pagination_class = None

    @extend_schema(
        tags=["developer"], responses={200: {"type": "array", "items": {"type": "object"}}}
    )
    def get(self, request: Request, agent_id: str) -> Response:
        agent = selectors.agent_for_developer(request.user, agent_id)
        return Response(_person_list(selectors.collaborators_of(agent)))

    @extend_schema(tags=["developer"], request=s.CollaboratorSerializer)
    def post(self, request: Request, agent_id: str) -> Response:
        agent = selectors.agent_for_developer(request.user, agent_id)
        body = s.CollaboratorSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        login = body.validated_data["user"]
        person = User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login)).first()
        if person is None:
            raise NotFound()
        services.agent_add_collaborator(request.user, agent=agent, user=person, request=request)
        return Response(
            _person_list(selectors.collaborators_of(agent)), status=status.HTTP_201_CREATED
        )


class CollaboratorDetailView(GenericAPIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(tags=["developer"], request=None, responses={200: None})
    def delete(self, request: Request, agent_id: str, user_id: str) -> Response:
        agent = selectors.agent_for_developer(request.user, agent_id)
        pk = selectors.parse_uuid(user_id)
        person = User.objects.filter(pk=pk).first() if pk else None
        if person is None:
            raise NotFound()
        services.agent_remove_collaborator(request.user, agent=agent, user=person, request=request)
        return Response(None)
