"""Automated review checks run when a version is submitted (SPEC §4.1 Review).

Each check returns ``{"name", "status", "message"}`` (plus optional ``details``) with
status ``pass``, ``warn``, ``fail`` or ``skipped``. Any ``fail`` makes the version's
check status ``failed``, which blocks approval.

The smoke run executes the version with the agent runtime, which lives in ``chats``
(``agents`` must not import it, docs/architecture.md): ``chats`` registers its runner
with :func:`register_smoke_runner` from its ``AppConfig.ready()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
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


# --- the smoke run -----------------------------------------------------------------------

SMOKE_PROMPT = "Hello! Who are you, and what can you help me with?"
SMOKE_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class SmokeRun:
    """What a smoke runner reports.

    ``status``: ``completed`` (``answer`` is what the agent said), ``failed`` (``code``
    and ``message`` are the run's error, as a RUN_ERROR event would carry them) or
    ``timeout`` (``answer`` is the part written in time). ``event_count``: the AG-UI
    events the agent's stream produced (every delta counted; RUN_STARTED and the terminal
    event are a chat run's framing and not produced). ``tools_not_offered``: the tools the
    configuration enables that the run kept from the model."""

    status: str
    answer: str = ""
    code: str = ""
    message: str = ""
    duration_ms: int = 0
    event_count: int = 0
    tools_not_offered: list[str] = field(default_factory=list)


COMPLETED, FAILED, TIMEOUT = "completed", "failed", "timeout"


class SmokeRunner(Protocol):
    def __call__(
        self, version: AgentVersion, *, llm_model: Any, prompt: str, timeout: float
    ) -> SmokeRun: ...


_smoke_runner: SmokeRunner | None = None


def register_smoke_runner(runner: SmokeRunner | None) -> None:
    """Set the function that runs a version once on ``llm_model`` with ``prompt`` as the
    user's message, within ``timeout`` seconds, writing nothing users see."""
    global _smoke_runner
    _smoke_runner = runner


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SMOKE_EXCERPT_CHARS else text[: SMOKE_EXCERPT_CHARS - 1] + "…"


def check_smoke_run(version: AgentVersion) -> dict[str, Any]:
    """Run the version once on the offline demo model — never on its own model, which may
    be a paid provider — and see that it answers."""
    from integrations.demo import demo_model_for_checks

    runner = _smoke_runner
    if runner is None:
        return _result(
            "smoke_run", SKIPPED, _("Skipped: no agent runtime is registered to run the agent.")
        )
    llm = demo_model_for_checks()
    if llm is None:
        return _result(
            "smoke_run",
            SKIPPED,
            _("Skipped: the demo model is switched off; checks never call the agent's model."),
        )
    timeout = float(getattr(settings, "REVIEW_SMOKE_RUN_TIMEOUT", 30))
    run = runner(version, llm_model=llm, prompt=SMOKE_PROMPT, timeout=timeout)
    details: dict[str, Any] = {
        "model": llm.display_name,
        "prompt": SMOKE_PROMPT,
        "answer_excerpt": _excerpt(run.answer),
        "duration_ms": run.duration_ms,
        "event_count": run.event_count,
        "tools": _("Not offered to the model: a smoke run executes no tool (%(names)s).")
        % {"names": ", ".join(run.tools_not_offered) or "-"},
    }
    if run.status == TIMEOUT:
        return _result(
            "smoke_run",
            WARN,
            _("The agent did not finish answering within %(limit)s s on the demo model.")
            % {"limit": f"{timeout:g}"},
            details,
        )
    if run.status != COMPLETED:
        details.update(code=run.code, error=run.message)
        return _result(
            "smoke_run",
            FAIL,
            _("The run failed on the demo model (%(code)s): %(message)s")
            % {"code": run.code, "message": run.message},
            details,
        )
    if not run.answer.strip():
        return _result(
            "smoke_run", FAIL, _("The run finished without an answer on the demo model."), details
        )
    return _result(
        "smoke_run",
        PASS,
        _("The agent answered on the demo model in %(ms)d ms.") % {"ms": run.duration_ms},
        details,
    )


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
