"""Runs API (SPEC §5.3): one-off runs, run status, stored events, stop.

``POST /api/v1/agents/{id}/run``   ``{input, callback_url?, context?}`` → ``{run_id}`` (202)
``GET  /api/v1/runs``              the user's runs (paginated, newest first)
``GET  /api/v1/runs/{id}``         status, output, usage, cost, error, timings, steps
``GET  /api/v1/runs/{id}/events``  ``?after=N&limit=M``: stored AG-UI events with ``seq``
``POST /api/v1/runs/{id}/stop``    stop (idempotent)
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentstore.api.serializers import StrictSerializer
from agentstore.errors import BadRequest
from chats import selectors, services
from chats.models import Run, RunStep


class OneOffRunInputSerializer(StrictSerializer):
    input = serializers.CharField(max_length=services.MAX_INPUT_CHARS, trim_whitespace=False)
    callback_url = serializers.URLField(
        max_length=1000, required=False, allow_blank=True, default=""
    )
    context = serializers.DictField(required=False, default=dict)

    def validate_callback_url(self, value: str) -> str:
        if value and not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError(_("Use an http:// or https:// URL."))
        return value


class RunStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunStep
        fields = [
            "index",
            "kind",
            "name",
            "status",
            "input",
            "output",
            "started_at",
            "finished_at",
            "duration_ms",
            "retries",
            "tokens",
            "cost",
            "error",
        ]


class RunSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True)
    agent_version_id = serializers.UUIDField(read_only=True)
    agent_version = serializers.CharField(source="agent_version.version", read_only=True)
    chat_id = serializers.UUIDField(read_only=True, allow_null=True)
    assistant_message_id = serializers.UUIDField(read_only=True, allow_null=True)
    model = serializers.SerializerMethodField()
    input = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    ttft_ms = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "agent_id",
            "agent_version_id",
            "agent_version",
            "chat_id",
            "assistant_message_id",
            "source",
            "status",
            "input",
            "output",
            "usage",
            "cost",
            "model",
            "error",
            "attempt",
            "last_seq",
            "created_at",
            "started_at",
            "first_token_at",
            "finished_at",
            "cancel_requested_at",
            "duration_ms",
            "ttft_ms",
        ]

    def get_model(self, run: Run) -> str | None:
        return run.llm_model.display_name if run.llm_model_id else None

    def get_input(self, run: Run) -> str:
        return str((run.input or {}).get("text") or "")

    def get_error(self, run: Run) -> dict[str, str] | None:
        if not run.error_code or run.status != Run.Status.FAILED:
            return None
        return {"code": run.error_code, "message": run.error_message}


class RunDetailSerializer(RunSerializer):
    steps = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "steps"]

    def get_steps(self, run: Run) -> list[dict[str, Any]]:
        return RunStepSerializer(selectors.run_steps(run), many=True).data


class AgentRunView(APIView):
    @extend_schema(
        request=OneOffRunInputSerializer,
        responses={
            202: inline_serializer(
                "OneOffRunCreated",
                {"run_id": serializers.UUIDField(), "status": serializers.CharField()},
            )
        },
    )
    def post(self, request: Request, agent_id: str) -> Response:
        data = OneOffRunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.run_create_oneoff(
            request.user,
            agent_id=agent_id,
            input_text=data.validated_data["input"],
            callback_url=data.validated_data["callback_url"],
            context=data.validated_data["context"],
            request=request,
        )
        return Response({"run_id": str(run.pk), "status": run.status}, status=202)


class RunListView(ListAPIView):
    serializer_class = RunSerializer
    sort_fields = {"created_at": "created_at", "status": "status"}
    default_sort = "created_at"

    def get_queryset(self):
        return selectors.runs_for(self.request.user)


class RunDetailView(APIView):
    @extend_schema(responses=RunDetailSerializer)
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_get_for(request.user, run_id)
        return Response(RunDetailSerializer(run).data)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(_("%(name)s must be an integer.") % {"name": name}) from None
    if value < 0:
        raise BadRequest(_("%(name)s must not be negative.") % {"name": name})
    return value


class RunEventsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Return events with seq > after."),
            OpenApiParameter("limit", int, description="At most this many (max 1000)."),
        ],
        responses=inline_serializer(
            "RunEvents",
            {
                "items": serializers.ListField(child=serializers.DictField()),
                "after": serializers.IntegerField(),
                "next_after": serializers.IntegerField(),
                "status": serializers.CharField(),
                "finished": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_get_for(request.user, run_id)
        after = _int_param(request, "after", 0)
        limit = _int_param(request, "limit", selectors.MAX_EVENTS_PAGE)
        items = selectors.run_events_after(run, after=after, limit=limit)
        return Response(
            {
                "items": items,
                "after": after,
                "next_after": items[-1]["seq"] if items else after,
                "status": run.status,
                "finished": run.status in Run.TERMINAL or run.status == Run.Status.PAUSED,
            }
        )


class RunStopView(APIView):
    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        run = services.run_stop(request.user, run_id=run_id, request=request)
        return Response(RunSerializer(run).data)
