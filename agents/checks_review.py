"""Automated review checks run when a version is submitted (SPEC §4.1 Review).

Each check returns ``{"name", "status", "message"}`` (plus optional ``details``) with
status ``pass``, ``warn``, ``fail`` or ``skipped``. Any ``fail`` makes the version's
check status ``failed``, which blocks approval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext as _

from agents.config import (
    normalize_config,
    reference_problems,
    schema_problems,
    semantic_problems,
    undeclared_variables,
)
from agents.models import AgentVersion

logger = logging.getLogger(__name__)

PASS, WARN, FAIL, SKIPPED = "pass", "warn", "fail", "skipped"


def _result(name: str, status: str, message: str, details: Any = None) -> dict[str, Any]:
    result = {"name": name, "status": status, "message": str(message)}
    if details:
        result["details"] = details
    return result


def check_schema(version: AgentVersion) -> dict[str, Any]:
    problems = schema_problems(version.config) or semantic_problems(
        normalize_config(version.config)
    )
    if problems:
        return _result(
            "schema",
            FAIL,
            _("%(n)d problem(s) in the configuration.") % {"n": len(problems)},
            problems,
        )
    return _result("schema", PASS, _("The configuration matches the schema."))


def check_references(version: AgentVersion) -> dict[str, Any]:
    if schema_problems(version.config):
        return _result("references", SKIPPED, _("Skipped: the configuration is not valid."))
    problems = reference_problems(
        normalize_config(version.config), developer=version.agent.developer
    )
    if problems:
        return _result(
            "references",
            FAIL,
            _("%(n)d referenced object(s) missing or not accessible to the developer.")
            % {"n": len(problems)},
            problems,
        )
    return _result(
        "references", PASS, _("Every referenced object exists and the developer may use it.")
    )


def check_skill_analysis(version: AgentVersion) -> dict[str, Any]:
    """Read the static-analysis report stored with each pinned skill version."""
    from integrations.models import SkillVersion

    entries = (version.config or {}).get("skills") or []
    if not entries:
        return _result("skill_analysis", SKIPPED, _("No skills referenced."))
    by_key = {
        (str(sv.skill_id), sv.version): sv
        for sv in SkillVersion.objects.filter(
            skill_id__in=[entry.get("skill_id") for entry in entries]
        ).select_related("skill")
    }
    errors, warnings, unanalysed = [], [], []
    for entry in entries:
        skill_version = by_key.get((str(entry.get("skill_id")), entry.get("version")))
        if skill_version is None:
            continue  # reported by the references check
        label = f"{skill_version.skill.name} {skill_version.version}"
        findings = (skill_version.analysis or {}).get("findings")
        if findings is None:
            unanalysed.append(label)
            continue
        for finding in findings:
            item = {"skill": label, **finding}
            if finding.get("severity") == "error":
                errors.append(item)
            elif finding.get("severity") == "warning":
                warnings.append(item)
    if errors:
        return _result(
            "skill_analysis",
            FAIL,
            _("Static analysis found %(n)d forbidden construct(s).") % {"n": len(errors)},
            errors + warnings,
        )
    if warnings or unanalysed:
        message = _("%(w)d warning(s); not analysed: %(u)s.") % {
            "w": len(warnings),
            "u": ", ".join(unanalysed) or "-",
        }
        return _result("skill_analysis", WARN, message, warnings)
    return _result("skill_analysis", PASS, _("Static analysis found nothing to report."))


def check_mcp_tools(version: AgentVersion) -> dict[str, Any]:
    """Record each MCP connection's tool-list fingerprint, so a server that changes its
    tools after approval can be caught (SPEC §13)."""
    from integrations.models import MCPConnection

    entries = (version.config or {}).get("mcp") or []
    if not entries:
        return _result("mcp_tools", SKIPPED, _("No MCP connections referenced."))
    connections = MCPConnection.objects.filter(
        pk__in=[entry.get("connection_id") for entry in entries]
    )
    fingerprints = {str(conn.pk): conn.tools_fingerprint for conn in connections}
    unchecked = sorted(conn.name for conn in connections if not conn.tools_fingerprint)
    if unchecked:
        return _result(
            "mcp_tools",
            WARN,
            _("Tools never discovered for: %(names)s.") % {"names": ", ".join(unchecked)},
            {"fingerprints": fingerprints},
        )
    return _result(
        "mcp_tools",
        PASS,
        _("Tool lists fingerprinted for %(n)d connection(s).") % {"n": len(fingerprints)},
        {"fingerprints": fingerprints},
    )


def check_persona_variables(version: AgentVersion) -> dict[str, Any]:
    if schema_problems(version.config):
        return _result("persona_variables", SKIPPED, _("Skipped: the configuration is not valid."))
    missing = undeclared_variables(normalize_config(version.config))
    if missing:
        return _result(
            "persona_variables",
            WARN,
            _("The system prompt uses undeclared variables: %(names)s.")
            % {"names": ", ".join(missing)},
        )
    return _result("persona_variables", PASS, _("Every template variable is declared."))


def check_smoke_run(version: AgentVersion) -> dict[str, Any]:
    # Replaced by a real run on the demo model when the agent runtime exists.
    return _result("smoke_run", SKIPPED, _("added with the agent runtime"))


CHECKS: list[Callable[[AgentVersion], dict[str, Any]]] = [
    check_schema,
    check_references,
    check_skill_analysis,
    check_mcp_tools,
    check_persona_variables,
    check_smoke_run,
]


def run_checks(version: AgentVersion) -> list[dict[str, Any]]:
    results = []
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        try:
            results.append(check(version))
        except Exception:  # a broken check must fail the review, not the task
            logger.exception("review check %s crashed for version %s", name, version.pk)
            results.append(_result(name, FAIL, _("The check could not run.")))
    return results
