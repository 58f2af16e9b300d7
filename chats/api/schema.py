"""The OpenAPI description of ``POST /api/v1/agent/run`` (AG-UI over SSE, ``chats.api.agui``).

drf-spectacular documents DRF views only; the AG-UI endpoint is a plain async Django view
(an open stream must hold no thread), so this postprocessing hook adds its operation: the
``RunAgentInput`` fields the view reads and a ``text/event-stream`` response. It runs
before ``agentstore.api.schema.envelope_postprocessing_hook``, which adds the error
envelopes of 400/401/403/404 and leaves the stream's 200 alone (it is not JSON).
"""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse

ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}

SCHEMAS: dict[str, Any] = {
    "AgUiMessage": {
        "type": "object",
        "description": (
            "An AG-UI message. Only the last message with role `user` is read (its text); "
            "the chat's stored history stands for the others."
        ),
        "required": ["id", "role"],
        "properties": {
            "id": {"type": "string"},
            "role": {
                "type": "string",
                "enum": [
                    "user",
                    "assistant",
                    "system",
                    "developer",
                    "tool",
                    "activity",
                    "reasoning",
                ],
            },
            "content": {
                "description": "Text, or content parts of which the `text` parts are read.",
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type"],
                            "properties": {
                                "type": {"type": "string", "example": "text"},
                                "text": {"type": "string"},
                            },
                            "additionalProperties": True,
                        },
                    },
                ],
            },
        },
        "additionalProperties": True,
    },
    "AgUiRunAgentInput": {
        "type": "object",
        "description": (
            "AG-UI `RunAgentInput` in its wire format (camelCase); the snake_case spelling "
            "(`thread_id`, `run_id`, `forwarded_props`) is accepted too. `tools`, `context` "
            "and `state` are accepted and not used by store agents."
        ),
        "required": ["messages"],
        "properties": {
            "threadId": {
                "type": "string",
                "description": (
                    "The chat. A thread of yours continues its chat; an unknown one starts a "
                    "chat with this id (an id that is not a UUID maps to a stable UUID per "
                    "user); empty or missing: a new chat."
                ),
            },
            "runId": {
                "type": "string",
                "description": (
                    "Accepted, not reused: the run id is the server's (`RUN_STARTED.runId`, "
                    "header `X-AgentStore-Run-Id`)."
                ),
            },
            "messages": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/AgUiMessage"},
                "description": "Must contain a `user` message with text.",
            },
            "forwardedProps": {
                "type": "object",
                "description": "Needed to start a new thread.",
                "properties": {
                    "agent_id": {
                        "type": "string",
                        "description": (
                            "The agent's UUID or slug (also `agentId` or `agent`); you must "
                            "have installed it or be one of its developers."
                        ),
                    },
                    "agent_version_id": {
                        "type": "string",
                        "format": "uuid",
                        "description": "Pin an approved version (also `agentVersionId`).",
                    },
                },
                "additionalProperties": True,
            },
            "tools": {"type": "array", "items": {"type": "object"}},
            "context": {"type": "array", "items": {"type": "object"}},
            "state": {"type": "object", "additionalProperties": True},
        },
        "additionalProperties": True,
    },
}

STREAM_DESCRIPTION = (
    "Server-sent events: the run's AG-UI events, one `data: {json}` line each, every event "
    "with the run's `seq`, from `RUN_STARTED` to the one terminal event (`RUN_FINISHED` "
    "or `RUN_ERROR`); then the response ends. Quiet periods carry `: keep-alive` comments. "
    "Errors after the stream started are a `RUN_ERROR` event. A client that disconnects does "
    "not stop the run; stop it with `POST /api/v1/agent/run/{run_id}/stop`."
)

STREAM_EXAMPLE = (
    'data: {"type":"RUN_STARTED","threadId":"…","runId":"…","seq":1}\n\n'
    'data: {"type":"TEXT_MESSAGE_CONTENT","messageId":"…","delta":"Hello","seq":4}\n\n'
    'data: {"type":"RUN_FINISHED","threadId":"…","runId":"…","seq":9}\n\n'
)


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def agent_run_operation() -> dict[str, Any]:
    return {
        "operationId": "v1_agent_run_create",
        "summary": "Run an agent (AG-UI over server-sent events)",
        "description": (
            "Sends the new user message of an AG-UI thread to a store agent and streams "
            "the answer as AG-UI events. Errors found before streaming starts are the "
            "JSON error envelope with the matching HTTP status."
        ),
        "tags": ["v1"],
        "security": [{"apiKey": []}, {"jwtAuth": []}, {"cookieAuth": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AgUiRunAgentInput"}}
            },
        },
        "responses": {
            "200": {
                "description": STREAM_DESCRIPTION,
                "headers": {
                    "X-AgentStore-Run-Id": {
                        "description": "The run (also `RUN_STARTED.runId`).",
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    "X-AgentStore-Thread-Id": {
                        "description": "The chat of the thread.",
                        "schema": {"type": "string", "format": "uuid"},
                    },
                },
                "content": {
                    "text/event-stream": {
                        "schema": {"type": "string"},
                        "example": STREAM_EXAMPLE,
                    }
                },
            },
            "409": _error("The chat is archived, or an answer is still being written (40901)."),
            "413": _error("The request body is too large (41301)."),
            "429": _error("A limit was reached (42901); see `Retry-After`."),
        },
    }


def agui_postprocessing_hook(result: dict[str, Any], generator, request, public) -> dict:
    """Add the AG-UI run operation (when this schema's URLs include the endpoint)."""
    try:
        path = reverse("api-agui-run")
    except NoReverseMatch:
        return result
    result.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    paths = result.setdefault("paths", {})
    operations = {**paths.get(path, {}), "post": agent_run_operation()}
    # Keep the paths in order: before the first one that sorts after it.
    items = [(key, value) for key, value in paths.items() if key != path]
    position = next((i for i, (key, _value) in enumerate(items) if key > path), len(items))
    items.insert(position, (path, operations))
    result["paths"] = dict(items)
    return result
