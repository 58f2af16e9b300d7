"""The agent configuration snapshot: its JSON Schema, defaults and validation (SPEC §4.1).

``normalize_config`` fills defaults; ``validate_config`` returns a list of problems
(``{"path", "message", "code"}``) — JSON Schema errors with their JSON path, then
reference problems (every model, skill version, MCP connection and knowledge base named
must exist and be usable by the developer).
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from django.utils.translation import gettext as _
from jsonschema import Draft202012Validator

AGENT_TYPES = ("react", "dialog", "agentic_rag", "plan_execute", "reflexion")
BUILTIN_TOOLS = ("current_time", "python_exec", "knowledge_search", "text_to_sql")
MEMORY_TYPES = ("in_memory", "database", "long_term")
# Variables every persona template may use without declaring them (SPEC §6.5).
PLATFORM_VARIABLES = ("user_name", "date", "time", "locale", "agent_name")

_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_UUID = {"type": "string", "format": "uuid"}
_TEXT = {"type": "string", "maxLength": 20000}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Agent configuration snapshot",
    "type": "object",
    "additionalProperties": False,
    "required": ["agent_type"],
    "properties": {
        "agent_type": {"enum": list(AGENT_TYPES)},
        "model": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "llm_model_id": {
                    "anyOf": [_UUID, {"type": "null"}],
                    "description": "null: the platform default model.",
                },
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                "stream": {"type": "boolean"},
                "params": {"type": "object", "maxProperties": 50},
            },
        },
        "system_prompt": {"type": "string", "maxLength": 50000},
        "persona": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "variables": {
                    "type": "object",
                    "maxProperties": 50,
                    "propertyNames": {"pattern": _NAME},
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "default": {"type": "string", "maxLength": 2000},
                            "description": {"type": "string", "maxLength": 500},
                        },
                    },
                },
                "few_shot": {
                    "type": "array",
                    "maxItems": 20,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["user", "assistant"],
                        "properties": {"user": _TEXT, "assistant": _TEXT},
                    },
                },
            },
        },
        "memory": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"enum": list(MEMORY_TYPES)},
                "window": {"type": "integer", "minimum": 1, "maximum": 500},
                "compression": {"type": "boolean"},
            },
        },
        "skills": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["skill_id", "version"],
                "properties": {
                    "skill_id": _UUID,
                    "version": {"type": "string", "minLength": 1, "maxLength": 64},
                },
            },
        },
        "mcp": {
            "type": "array",
            "maxItems": 20,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["connection_id"],
                "properties": {
                    "connection_id": _UUID,
                    "enabled_functions": {
                        "type": "array",
                        "uniqueItems": True,
                        "maxItems": 200,
                        "items": {"type": "string", "minLength": 1, "maxLength": 200},
                        "description": "Empty: every tool the connection offers.",
                    },
                    "preset_args": {
                        "type": "object",
                        "additionalProperties": {"type": "object"},
                    },
                },
            },
        },
        "builtin_tools": {
            "type": "array",
            "uniqueItems": True,
            "items": {"enum": list(BUILTIN_TOOLS)},
        },
        "tool_approval": {
            "type": "object",
            "propertyNames": {"minLength": 1, "maxLength": 300},
            "additionalProperties": {"enum": ["ask", "allow"]},
        },
        "knowledge": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "knowledge_base_ids": {
                    "type": "array",
                    "uniqueItems": True,
                    "maxItems": 20,
                    "items": _UUID,
                },
                "top_k": {"type": "integer", "minimum": 1, "maximum": 50},
                "score_threshold": {
                    "anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]
                },
                "rerank": {"type": "boolean"},
            },
        },
        "workflow": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["definition"],
                    "properties": {"definition": {"type": "object"}},
                },
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["template_id"],
                    "properties": {
                        "template_id": {"type": "string", "minLength": 1, "maxLength": 64},
                        "parameters": {"type": "object"},
                    },
                },
            ]
        },
    },
}

DEFAULT_CONFIG: dict[str, Any] = {
    "agent_type": "react",
    "model": {
        "llm_model_id": None,
        "temperature": 0.7,
        "max_tokens": 2048,
        "stream": True,
        "params": {},
    },
    "system_prompt": "",
    "persona": {"variables": {}, "few_shot": []},
    "memory": {"type": "database", "window": 20, "compression": False},
    "skills": [],
    "mcp": [],
    "builtin_tools": [],
    "tool_approval": {},
    "knowledge": {"knowledge_base_ids": [], "top_k": 5, "score_threshold": None, "rerank": False},
    "workflow": None,
}

_VALIDATOR = Draft202012Validator(CONFIG_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def default_config(agent_type: str = "react") -> dict[str, Any]:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["agent_type"] = agent_type
    return config


def normalize_config(config: Any) -> dict[str, Any]:
    """Fill defaults for missing keys (one level into the nested sections). Values of
    the wrong type are left alone, so validation still reports them."""
    if not isinstance(config, dict):
        return config
    result = copy.deepcopy(config)
    for key, default in DEFAULT_CONFIG.items():
        if key not in result:
            result[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and isinstance(result[key], dict):
            for sub_key, sub_default in default.items():
                result[key].setdefault(sub_key, copy.deepcopy(sub_default))
    for entry in result.get("mcp") or []:
        if isinstance(entry, dict):
            entry.setdefault("enabled_functions", [])
            entry.setdefault("preset_args", {})
    return result


def _problem(path: str, message: str, code: str) -> dict[str, str]:
    return {"path": path, "message": message, "code": code}


def _schema_message(error) -> str:
    if error.validator == "anyOf" and list(error.path)[:1] == ["workflow"]:
        return _(
            "A workflow is either an inline definition or a template with parameters, never both."
        )
    return error.message


def schema_problems(config: Any) -> list[dict[str, str]]:
    """JSON Schema errors, each with the JSON path of the offending value."""
    errors = sorted(_VALIDATOR.iter_errors(config), key=lambda e: (list(e.path), e.message))
    return [_problem(error.json_path, _schema_message(error), "schema") for error in errors]


def semantic_problems(config: dict[str, Any]) -> list[dict[str, str]]:
    """Rules a JSON Schema cannot say: preset arguments only for enabled functions."""
    problems = []
    for index, entry in enumerate(config.get("mcp") or []):
        enabled = set(entry.get("enabled_functions") or [])
        for name in entry.get("preset_args") or {}:
            if enabled and name not in enabled:
                problems.append(
                    _problem(
                        f"$.mcp[{index}].preset_args.{name}",
                        _("Preset arguments for '%(fn)s', which is not an enabled function.")
                        % {"fn": name},
                        "schema",
                    )
                )
    return problems


def undeclared_variables(config: dict[str, Any]) -> list[str]:
    """Template variables in the system prompt that the persona does not declare."""
    declared = set((config.get("persona") or {}).get("variables") or {}) | set(PLATFORM_VARIABLES)
    used = _VARIABLE.findall(config.get("system_prompt") or "")
    return sorted({name for name in used if name not in declared})


def _not_accessible(path: str, what: str, ident: Any) -> dict[str, str]:
    return _problem(
        path,
        _("%(what)s %(id)s: not found or not accessible.") % {"what": what, "id": ident},
        "reference",
    )


def reference_problems(config: dict[str, Any], *, developer) -> list[dict[str, str]]:
    """Every referenced object must exist and be usable by ``developer``.

    Call only on a configuration without schema problems (ids are well-formed UUIDs).
    Another user's private object is reported exactly like a missing one.
    """
    from agents import selectors

    problems: list[dict[str, str]] = []
    model_id = (config.get("model") or {}).get("llm_model_id")
    if model_id and not selectors.llm_models_usable_by(developer).filter(pk=model_id).exists():
        problems.append(_not_accessible("$.model.llm_model_id", _("Model"), model_id))

    skills = config.get("skills") or []
    if skills:
        usable = {
            (str(skill_id), version)
            for skill_id, version in selectors.skill_versions_usable_by(developer)
            .filter(skill_id__in=[entry["skill_id"] for entry in skills])
            .values_list("skill_id", "version")
        }
        for index, entry in enumerate(skills):
            if (str(uuid.UUID(entry["skill_id"])), entry["version"]) not in usable:
                ident = f"{entry['skill_id']}@{entry['version']}"
                problems.append(_not_accessible(f"$.skills[{index}]", _("Skill"), ident))

    connections = config.get("mcp") or []
    if connections:
        found = {
            str(conn.pk): conn
            for conn in selectors.mcp_connections_usable_by(developer).filter(
                pk__in=[entry["connection_id"] for entry in connections]
            )
        }
        for index, entry in enumerate(connections):
            conn = found.get(str(uuid.UUID(entry["connection_id"])))
            if conn is None:
                problems.append(
                    _not_accessible(
                        f"$.mcp[{index}].connection_id", _("MCP connection"), entry["connection_id"]
                    )
                )
                continue
            offered = {tool.get("name") for tool in conn.tools or [] if isinstance(tool, dict)}
            # Before the first tool discovery the names cannot be checked; review
            # fingerprints the tool list instead.
            for name in entry.get("enabled_functions") or []:
                if offered and name not in offered:
                    problems.append(
                        _problem(
                            f"$.mcp[{index}].enabled_functions",
                            _("'%(fn)s' is not a tool of MCP connection %(name)s.")
                            % {"fn": name, "name": conn.name},
                            "reference",
                        )
                    )

    kb_ids = (config.get("knowledge") or {}).get("knowledge_base_ids") or []
    if kb_ids:
        found_kbs = {
            str(pk)
            for pk in selectors.knowledge_bases_usable_by(developer)
            .filter(pk__in=kb_ids)
            .values_list("pk", flat=True)
        }
        for index, kb_id in enumerate(kb_ids):
            if str(uuid.UUID(kb_id)) not in found_kbs:
                problems.append(
                    _not_accessible(
                        f"$.knowledge.knowledge_base_ids[{index}]", _("Knowledge base"), kb_id
                    )
                )
    return problems


def validate_config(config: Any, *, developer) -> list[dict[str, str]]:
    """All problems of a configuration (empty list: valid). Defaults are filled first."""
    problems = schema_problems(config)
    if problems:
        return problems
    config = normalize_config(config)
    problems = semantic_problems(config)
    return problems + reference_problems(config, developer=developer)
