"""Shared fixtures: the cast of users (SPEC-style alice/bob), API client, run-mode switches.

Integration tests (``@pytest.mark.integration``) need PostgreSQL and Redis; they are
skipped with a one-line reason where DATABASE_URL/REDIS_URL are not set. With
``AGENTSTORE_NO_SKIPS=1`` (CI) every skip is turned into a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tests.factories import PASSWORD, UserFactory

CHROMIUM = "/usr/bin/chromium"
HAS_SERVICES = bool(
    os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")
)
NO_SKIPS = os.environ.get("AGENTSTORE_NO_SKIPS") == "1"

# Reusable real servers (ASGI server thread, Celery worker subprocess) for every app's tests.
pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.fake_llm"]


def pytest_collection_modifyitems(config, items):
    need_services = pytest.mark.skip(
        reason="integration: set DATABASE_URL (PostgreSQL) and REDIS_URL to run"
    )
    need_browser = pytest.mark.skip(reason=f"browser: {CHROMIUM} not installed")
    for item in items:
        if "integration" in item.keywords and not HAS_SERVICES:
            item.add_marker(need_services)
        if "browser" in item.keywords and not shutil.which(CHROMIUM):
            item.add_marker(need_browser)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (AGENTSTORE_NO_SKIPS=1): {report.longrepr}"


@pytest.fixture(autouse=True)
def _embedded_dispatch(settings):
    # Unit tests run background work inline even on PostgreSQL + Redis; integration
    # tests that start a real Celery worker switch TASK_DISPATCH back to "celery".
    settings.TASK_DISPATCH = "embedded"


@pytest.fixture(autouse=True)
def _fresh_setting_memo():
    # A rolled-back test transaction sends no signal: forget remembered system settings.
    from integrations.system_settings import forget_memo

    forget_memo()
    yield
    forget_memo()


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def user(db):
    return UserFactory(username="alice", role=Role.USER)


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob", role=Role.USER)


@pytest.fixture
def developer(db):
    return UserFactory(username="dora", role=Role.DEVELOPER)


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rex", role=Role.REVIEWER, is_staff=True)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", role=Role.ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def auth_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client
