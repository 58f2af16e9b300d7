"""drf-spectacular post-processing: describe the envelope the API really sends."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "integer", "example": 40002, "description": "Five-digit error code."},
        "message": {"type": "string"},
        "details": {"nullable": True, "description": "Field errors or extra context."},
    },
}

ERROR_RESPONSES = {
    "400": "Bad request or validation failed (40001–40099).",
    "401": "Authentication missing or invalid (40101–40199).",
    "403": "Permission denied (40301–40399).",
    "404": "Not found (40401–40499).",
}


def _wrap(schema: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "message", "data"],
        "properties": {
            "code": {"type": "integer", "enum": [0]},
            "message": {"type": "string", "example": "success"},
            "data": schema if schema is not None else {"nullable": True},
        },
    }


def envelope_postprocessing_hook(result: dict[str, Any], generator, request, public) -> dict:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorEnvelope"] = ERROR_SCHEMA
    error_ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in operations.items():
            if method.startswith("x-") or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                if not status.startswith("2"):
                    continue
                declared = response.get("content") or {}
                if declared and "application/json" not in declared:
                    continue  # not JSON (an event stream): sent as it is, no envelope
                if status == "204":
                    responses.pop(status)
                    status = "200"
                    response = {"description": "Done."}
                content = response.setdefault("content", {})
                json_content = content.setdefault("application/json", {})
                json_content["schema"] = _wrap(json_content.get("schema"))
                responses[status] = response
            for status, description in ERROR_RESPONSES.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
    return result
