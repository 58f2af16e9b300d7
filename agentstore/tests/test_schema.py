"""The OpenAPI schema (drf-spectacular, ``/api/schema/``): valid OpenAPI 3, the envelope
around JSON successes, and the AG-UI SSE endpoint that is not a DRF view."""

from __future__ import annotations

import copy

import pytest
import yaml
from ag_ui.core import RunAgentInput
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from agentstore.api.schema import envelope_postprocessing_hook

AGENT_RUN = "/api/v1/agent/run"
AGENT_RUN_STOP = "/api/v1/agent/run/{run_id}/stop"


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_is_valid_openapi(schema):
    validate_schema(schema)


def test_the_served_schema_documents_the_agui_endpoints(client):
    response = client.get("/api/schema/")

    served = yaml.safe_load(response.content)
    assert response.status_code == 200
    assert list(served["paths"][AGENT_RUN]) == ["post"]
    assert list(served["paths"][AGENT_RUN_STOP]) == ["post"]


def test_the_agui_run_documents_its_request_body(schema):
    operation = schema["paths"][AGENT_RUN]["post"]
    body = schema["components"]["schemas"]["AgUiRunAgentInput"]

    assert operation["requestBody"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/AgUiRunAgentInput"}}
    }
    assert sorted(body["properties"]) == [
        "context",
        "forwardedProps",
        "messages",
        "runId",
        "state",
        "threadId",
        "tools",
    ]
    assert body["required"] == ["messages"]
    assert sorted(body["properties"]["forwardedProps"]["properties"]) == [
        "agent_id",
        "agent_version_id",
    ]
    assert body["properties"]["messages"]["items"] == {"$ref": "#/components/schemas/AgUiMessage"}


def test_every_documented_request_field_is_a_run_agent_input_field(schema):
    documented = set(schema["components"]["schemas"]["AgUiRunAgentInput"]["properties"])
    wire_names = {field.alias for field in RunAgentInput.model_fields.values()}

    assert documented - wire_names == set()


def test_the_agui_run_answers_an_event_stream_and_enveloped_errors(schema):
    responses = schema["paths"][AGENT_RUN]["post"]["responses"]

    assert list(responses["200"]["content"]) == ["text/event-stream"]
    assert responses["200"]["content"]["text/event-stream"]["schema"] == {"type": "string"}
    assert sorted(responses["200"]["headers"]) == ["X-AgentStore-Run-Id", "X-AgentStore-Thread-Id"]
    assert sorted(responses) == ["200", "400", "401", "403", "404", "409", "413", "429"]
    for status in ("400", "401", "403", "404", "409", "413", "429"):
        assert responses[status]["content"] == {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}
        }


def test_the_agui_stop_returns_the_enveloped_run(schema):
    operation = schema["paths"][AGENT_RUN_STOP]["post"]

    data = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert data["properties"]["data"] == {"$ref": "#/components/schemas/Run"}
    assert operation["summary"] == "Stop an AG-UI run"


def test_the_envelope_hook_wraps_json_successes_and_leaves_other_media_types():
    stream = {"text/event-stream": {"schema": {"type": "string"}}}
    result = {
        "paths": {
            "/api/v1/things": {
                "get": {"responses": {"200": {"content": {"application/json": {"schema": {}}}}}},
                "post": {"responses": {"200": {"content": copy.deepcopy(stream)}}},
            }
        }
    }

    envelope_postprocessing_hook(result, generator=None, request=None, public=True)

    operations = result["paths"]["/api/v1/things"]
    wrapped = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert wrapped["required"] == ["code", "message", "data"]
    assert operations["post"]["responses"]["200"]["content"] == stream
