"""Production mode: submitting a version enqueues the review checks on Redis and a real
Celery worker process runs them against the same PostgreSQL database."""

from __future__ import annotations

import time

import pytest

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents import services
from agents.config import default_config
from agents.models import AgentVersion

pytestmark = pytest.mark.integration


def _wait_for_checks(version_id, timeout: float = 30.0) -> AgentVersion:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version = AgentVersion.objects.get(pk=version_id)
        if version.check_status in (
            AgentVersion.CheckStatus.PASSED,
            AgentVersion.CheckStatus.FAILED,
        ):
            return version
        time.sleep(0.1)
    raise AssertionError("the review checks did not finish in time")


def test_submission_checks_run_in_a_celery_worker(celery_worker):
    developer = UserFactory(username="dora", role=Role.DEVELOPER)
    agent = services.agent_create(developer, data={"name": "Helper"})
    version = services.agent_version_create(
        developer, agent=agent, version="1.0.0", changelog="First.", config=default_config()
    )

    services.agent_version_submit(developer, version=version)

    checked = _wait_for_checks(version.pk)
    assert checked.check_status == AgentVersion.CheckStatus.PASSED
    assert [result["name"] for result in checked.check_results] == [
        "schema",
        "references",
        "skill_analysis",
        "mcp_tools",
        "persona_variables",
        "smoke_run",
    ]
    # The worker process registered the runtime (chats' AppConfig.ready) and ran the
    # version on the demo model.
    smoke = checked.check_results[-1]
    assert smoke["status"] == "pass"
    assert smoke["details"]["answer_excerpt"].startswith("I am the offline demo model")
