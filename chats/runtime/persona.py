"""Personas (SPEC §6.5): the system prompt as a template, rendered without code execution.

A template may use ``{{ name }}`` placeholders — nothing else is interpreted: no tags,
filters, attribute access or expressions, so a developer's prompt can never run code or
reach objects. Rendering is a single pass, so a value that itself contains ``{{ … }}``
(e.g. a user name) is inserted literally and never expanded.

Variables, later ones winning:
1. the persona's declared variables with their defaults (``config.persona.variables``);
2. overrides of those declared variables from the chat or run context
   (``context["variables"]``) — undeclared names are ignored;
3. the platform variables, which cannot be overridden: ``user_name``, ``date``, ``time``,
   ``locale``, ``agent_name``.

An unknown placeholder renders as an empty string (validation of the configuration
already reports undeclared variables to the developer).

Few-shot examples (``config.persona.few_shot``: ``[{user, assistant}]``) become example
turns placed before the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MAX_VALUE_LENGTH = 2000


def platform_variables(
    *, user_name: str, agent_name: str, locale: str, now: datetime
) -> dict[str, str]:
    return {
        "user_name": user_name,
        "agent_name": agent_name,
        "locale": locale,
        "date": now.date().isoformat(),
        "time": now.strftime("%H:%M"),
    }


def persona_variables(
    config: Mapping[str, Any],
    *,
    platform: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The variables a template is rendered with (see the module docstring)."""
    declared = (config.get("persona") or {}).get("variables") or {}
    values: dict[str, str] = {}
    for name, spec in declared.items():
        default = spec.get("default", "") if isinstance(spec, Mapping) else ""
        values[name] = str(default)
    for name, value in (overrides or {}).items():
        if name in declared and isinstance(value, str | int | float):
            values[name] = str(value)[:MAX_VALUE_LENGTH]
    values.update(platform)
    return values


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """Replace each ``{{ name }}`` with its value (single pass; unknown names → "")."""
    if not template or "{{" not in template:
        return template or ""
    return _VARIABLE.sub(lambda match: variables.get(match.group(1), ""), template)


def render_system_prompt(config: Mapping[str, Any], variables: Mapping[str, str]) -> str:
    return render_template(str(config.get("system_prompt") or ""), variables)


def few_shot_turns(
    config: Mapping[str, Any], variables: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``[(role, text), …]`` example turns, rendered like the prompt."""
    turns: list[tuple[str, str]] = []
    for example in (config.get("persona") or {}).get("few_shot") or []:
        if not isinstance(example, Mapping):
            continue
        user = render_template(str(example.get("user") or ""), variables)
        assistant = render_template(str(example.get("assistant") or ""), variables)
        if user and assistant:
            turns.extend([("user", user), ("assistant", assistant)])
    return turns
