"""Chats REST API (SPEC §5.3, §10). Thin views: parse → one service or selector → render.

``GET/POST   /api/v1/chats``                          list (q, status, is_test) / create
``GET/PUT/PATCH/DELETE /api/v1/chats/{id}``           read / rename, archive, restore / delete
``POST       /api/v1/chats/{id}/upgrade``             pin the agent's latest version
``GET/POST   /api/v1/chats/{id}/messages``            the active branch (before_id, limit) / send
``POST       /api/v1/chats/{id}/messages/{mid}/regenerate``
``POST       /api/v1/chats/{id}/messages/{mid}/edit`` ``{content}``
``POST       /api/v1/chats/{id}/branch``              ``{message_id}``: show that branch
``GET        /api/v1/chats/{id}/export?format=md|json``  a file download

Sending returns ``202 {run_id, user_message_id, assistant_message_id}``: the answer streams
over the chat's WebSocket (``resume`` with the run id) or ``GET /api/v1/runs/{id}/events``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.utils.html import escape, linebreaks
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from agents.rendering import render_markdown
from agentstore.api.serializers import StrictSerializer
from chats import chat_selectors, messaging
from chats.models import Chat, ChatMessage

# --- serializers ------------------------------------------------------------------------------


class ChatSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True)
    agent = serializers.SerializerMethodField()
    agent_version_id = serializers.UUIDField(read_only=True)
    agent_version = serializers.CharField(source="agent_version.version", read_only=True)
    upgrade_available = serializers.SerializerMethodField()

    class Meta:
        model = Chat
        fields = [
            "id",
            "title",
            "status",
            "is_test",
            "agent_id",
            "agent",
            "agent_version_id",
            "agent_version",
            "upgrade_available",
            "message_count",
            "last_message_at",
            "created_at",
            "updated_at",
        ]

    def get_agent(self, chat: Chat) -> dict[str, Any]:
        agent = chat.agent
        return {"id": str(agent.pk), "name": agent.name, "slug": agent.slug, "icon": agent.icon}

    def get_upgrade_available(self, chat: Chat) -> bool:
        agent = chat.agent
        return bool(
            not chat.is_test
            and agent.status == Agent.Status.PUBLISHED
            and agent.current_version_id
            and agent.current_version_id != chat.agent_version_id
        )


class ChatCreateSerializer(StrictSerializer):
    agent_id = serializers.CharField()
    agent_version_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    is_test = serializers.BooleanField(required=False, default=False)
    title = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=messaging.MAX_TITLE_CHARS
    )


class ChatUpdateSerializer(StrictSerializer):
    title = serializers.CharField(required=False, max_length=messaging.MAX_TITLE_CHARS)
    status = serializers.ChoiceField(
        choices=[Chat.Status.ACTIVE, Chat.Status.ARCHIVED], required=False
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(_("Send a title or a status."))
        return attrs


class ChatListQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    status = serializers.ChoiceField(
        choices=[Chat.Status.ACTIVE, Chat.Status.ARCHIVED], required=False
    )
    is_test = serializers.BooleanField(required=False, default=False)


class MessageSerializer(serializers.ModelSerializer):
    parent_id = serializers.UUIDField(read_only=True, allow_null=True)
    run_id = serializers.UUIDField(read_only=True, allow_null=True)
    run_status = serializers.SerializerMethodField()
    agent_version_id = serializers.UUIDField(read_only=True, allow_null=True)
    agent_version = serializers.SerializerMethodField()
    content_html = serializers.SerializerMethodField()
    siblings = serializers.SerializerMethodField()

    class Meta:
        model = ChatMessage
        fields = [
            "id",
            "parent_id",
            "role",
            "content",
            "content_html",
            "content_type",
            "status",
            "message_type",
            "metadata",
            "run_id",
            "run_status",
            "agent_version_id",
            "agent_version",
            "siblings",
            "created_at",
        ]

    def get_run_status(self, message: ChatMessage) -> str | None:
        return message.run.status if message.run_id and message.run else None

    def get_agent_version(self, message: ChatMessage) -> str | None:
        return message.agent_version.version if message.agent_version_id else None

    def get_content_html(self, message: ChatMessage) -> str:
        # Answers are Markdown, rendered and sanitised on the server; what the user typed
        # is shown as typed.
        if message.role == ChatMessage.Role.USER:
            return linebreaks(escape(message.content))
        return str(render_markdown(message.content))

    def get_siblings(self, message: ChatMessage) -> dict[str, Any]:
        page: chat_selectors.BranchPage | None = self.context.get("page")
        if page is None:
            return {"index": 1, "count": 1, "ids": [str(message.pk)]}
        return page.sibling_info(message)


class MessagesQuerySerializer(serializers.Serializer):
    before_id = serializers.CharField(required=False, allow_blank=True)
    limit = serializers.IntegerField(
        required=False,
        default=chat_selectors.DEFAULT_PAGE,
        min_value=1,
        max_value=chat_selectors.MAX_PAGE,
    )


class MessagePostSerializer(StrictSerializer):
    content = serializers.CharField(trim_whitespace=False, allow_blank=True)
    parent_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class MessageEditSerializer(StrictSerializer):
    content = serializers.CharField(trim_whitespace=False, allow_blank=True)


class EmptySerializer(StrictSerializer):
    pass


class BranchSerializer(StrictSerializer):
    message_id = serializers.CharField()


TurnSerializer = inline_serializer(
    "ChatTurn",
    {
        "chat_id": serializers.UUIDField(),
        "run_id": serializers.UUIDField(),
        "user_message_id": serializers.UUIDField(),
        "assistant_message_id": serializers.UUIDField(),
        "parent_id": serializers.UUIDField(allow_null=True),
        "agent_version_id": serializers.UUIDField(),
        "status": serializers.CharField(),
    },
)

MessagePageSerializer = inline_serializer(
    "ChatMessagePage",
    {
        "items": MessageSerializer(many=True),
        "has_more": serializers.BooleanField(),
        "next_before_id": serializers.UUIDField(allow_null=True),
        "leaf_id": serializers.UUIDField(allow_null=True),
        "total": serializers.IntegerField(),
    },
)


def _turn(turn: messaging.ChatTurn) -> Response:
    parent = turn.user_message.parent_id
    return Response(
        {
            "chat_id": str(turn.chat.pk),
            "run_id": str(turn.run.pk),
            "user_message_id": str(turn.user_message.pk),
            "assistant_message_id": str(turn.assistant_message.pk),
            "parent_id": str(parent) if parent else None,
            "agent_version_id": str(turn.run.agent_version_id),
            "status": turn.run.status,
        },
        status=status.HTTP_202_ACCEPTED,
    )


def _page(chat: Chat, *, before_id: Any = None, limit: int = chat_selectors.DEFAULT_PAGE) -> dict:
    page = chat_selectors.branch_page(chat, before_id=before_id, limit=limit)
    items = MessageSerializer(page.messages, many=True, context={"page": page}).data
    return {
        "items": items,
        "has_more": page.has_more,
        "next_before_id": str(page.messages[0].pk) if page.has_more and page.messages else None,
        "leaf_id": str(page.leaf_id) if page.leaf_id else None,
        "total": page.total,
    }


# --- views ------------------------------------------------------------------------------------


@extend_schema(tags=["chats"])
class ChatListCreateView(GenericAPIView):
    serializer_class = ChatSerializer
    sort_fields = {
        "updated_at": "updated_at",
        "created_at": "created_at",
        "last_message_at": "last_message_at",
        "title": "title",
    }
    default_sort = "updated_at"

    def get_queryset(self):
        params = ChatListQuerySerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return chat_selectors.chats_for(
            self.request.user,
            q=params.validated_data["q"],
            status=params.validated_data.get("status"),
            is_test=params.validated_data["is_test"],
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Search titles and agent names."),
            OpenApiParameter("status", str, enum=["active", "archived"]),
            OpenApiParameter("is_test", bool, description="Developer test chats instead."),
        ],
        responses=ChatSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=ChatCreateSerializer, responses={201: ChatSerializer})
    def post(self, request: Request) -> Response:
        data = ChatCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        chat = messaging.chat_create(
            request.user,
            agent_id=data.validated_data["agent_id"],
            agent_version_id=data.validated_data.get("agent_version_id"),
            is_test=data.validated_data["is_test"],
            title=data.validated_data["title"],
            request=request,
        )
        return Response(ChatSerializer(chat).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["chats"])
class ChatDetailView(APIView):
    @extend_schema(responses=ChatSerializer)
    def get(self, request: Request, chat_id: str) -> Response:
        return Response(ChatSerializer(chat_selectors.chat_for(request.user, chat_id)).data)

    def _update(self, request: Request, chat_id: str) -> Response:
        chat = chat_selectors.chat_for(request.user, chat_id)
        data = ChatUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        chat = messaging.chat_update(
            request.user,
            chat=chat,
            title=data.validated_data.get("title"),
            status=data.validated_data.get("status"),
            request=request,
        )
        return Response(ChatSerializer(chat).data)

    @extend_schema(request=ChatUpdateSerializer, responses=ChatSerializer)
    def put(self, request: Request, chat_id: str) -> Response:
        return self._update(request, chat_id)

    @extend_schema(request=ChatUpdateSerializer, responses=ChatSerializer)
    def patch(self, request: Request, chat_id: str) -> Response:
        return self._update(request, chat_id)

    @extend_schema(responses={200: None})
    def delete(self, request: Request, chat_id: str) -> Response:
        chat = chat_selectors.chat_for(request.user, chat_id)
        messaging.chat_delete(request.user, chat=chat, request=request)
        return Response(None)


@extend_schema(tags=["chats"])
class ChatUpgradeView(APIView):
    @extend_schema(request=None, responses=ChatSerializer)
    def post(self, request: Request, chat_id: str) -> Response:
        chat = chat_selectors.chat_for(request.user, chat_id)
        chat = messaging.chat_upgrade_version(request.user, chat=chat, request=request)
        return Response(ChatSerializer(chat).data)


@extend_schema(tags=["chats"])
class ChatMessagesView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("before_id", str, description="Messages before this one."),
            OpenApiParameter("limit", int, description="At most this many (1–200, 50)."),
        ],
        responses=MessagePageSerializer,
    )
    def get(self, request: Request, chat_id: str) -> Response:
        chat = chat_selectors.chat_for(request.user, chat_id)
        params = MessagesQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(
            _page(
                chat,
                before_id=params.validated_data.get("before_id"),
                limit=params.validated_data["limit"],
            )
        )

    @extend_schema(request=MessagePostSerializer, responses={202: TurnSerializer})
    def post(self, request: Request, chat_id: str) -> Response:
        chat = chat_selectors.chat_for(request.user, chat_id)
        data = MessagePostSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        turn = messaging.chat_message_post(
            request.user,
            chat=chat,
            content=data.validated_data["content"],
            parent_id=data.validated_data.get("parent_id"),
            request=request,
        )
        return _turn(turn)


@extend_schema(tags=["chats"])
class ChatRegenerateView(APIView):
    @extend_schema(request=None, responses={202: TurnSerializer})
    def post(self, request: Request, chat_id: str, message_id: str) -> Response:
        chat = chat_selectors.chat_for(request.user, chat_id)
        EmptySerializer(data=request.data or {}).is_valid(raise_exception=True)
        turn = messaging.chat_regenerate(
            request.user, chat=chat, message_id=message_id, request=request
        )
        return _turn(turn)


@extend_schema(tags=["chats"])
class ChatEditMessageView(APIView):
    @extend_schema(request=MessageEditSerializer, responses={202: TurnSerializer})
    def post(self, request: Request, chat_id: str, message_id: str) -> Response:
        chat = chat_selectors.chat_for(request.user, chat_id)
        data = MessageEditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        turn = messaging.chat_edit_message(
            request.user,
            chat=chat,
            message_id=message_id,
            content=data.validated_data["content"],
            request=request,
        )
        return _turn(turn)


@extend_schema(tags=["chats"])
class ChatBranchView(APIView):
    @extend_schema(request=BranchSerializer, responses=MessagePageSerializer)
    def post(self, request: Request, chat_id: str) -> Response:
        chat = chat_selectors.chat_for(request.user, chat_id)
        data = BranchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        messaging.chat_branch_select(
            request.user, chat=chat, message_id=data.validated_data["message_id"]
        )
        return Response(_page(chat))


class IgnoreFormatParameter(DefaultContentNegotiation):
    """``?format=`` names the export's file format here, not a DRF renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(tags=["chats"])
class ChatExportView(APIView):
    content_negotiation_class = IgnoreFormatParameter

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(messaging.EXPORT_FORMATS))],
        responses={(200, "text/markdown"): OpenApiTypes.STR, (200, "application/json"): dict},
    )
    def get(self, request: Request, chat_id: str) -> HttpResponse:
        chat = chat_selectors.chat_for(request.user, chat_id)
        export = messaging.chat_export(
            request.user, chat=chat, fmt=request.query_params.get("format", "md")
        )
        response = HttpResponse(export.body, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response
