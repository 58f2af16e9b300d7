from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from agentstore import health
from agentstore.observability import (
    bind_request_id,
    current_request_id,
    redact,
    reset_request_id,
)


@pytest.fixture
def json_lines():
    """A handler built like settings.LOGGING's console handler (JSON), on the root logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(import_string(settings.LOGGING["filters"]["request_id"]["()"])())
    handler.setFormatter(import_string(settings.LOGGING["formatters"]["json"]["()"])())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def _fail_database():
    raise ConnectionError("database unreachable")


def test_console_handler_uses_request_ids_and_json_when_debug_is_off():
    console = settings.LOGGING["handlers"]["console"]

    assert console["filters"] == ["request_id"]
    assert console["formatter"] == "json"


def test_log_line_emitted_during_a_request_carries_that_request_id(client, monkeypatch, json_lines):
    monkeypatch.setattr(health, "_check_database", _fail_database)

    client.get("/readyz", headers={"X-Request-ID": "probe-42"})

    line = next(entry for entry in json_lines() if entry["logger"] == "agentstore.health")
    assert line["request_id"] == "probe-42"
    assert line["level"] == "WARNING"
    assert line["check"] == "database"
    assert (
        line["message"] == "readiness check database failed: ConnectionError: database unreachable"
    )


def test_generated_request_id_is_the_one_in_the_logs_and_the_response(
    client, monkeypatch, json_lines
):
    monkeypatch.setattr(health, "_check_database", _fail_database)

    response = client.get("/readyz")

    line = next(entry for entry in json_lines() if entry["logger"] == "agentstore.health")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert line["request_id"] == response["X-Request-ID"]


def test_two_requests_log_different_ids(client, monkeypatch, json_lines):
    monkeypatch.setattr(health, "_check_database", _fail_database)

    client.get("/readyz", headers={"X-Request-ID": "first"})
    client.get("/readyz", headers={"X-Request-ID": "second"})

    ids = [entry["request_id"] for entry in json_lines() if entry["logger"] == "agentstore.health"]
    assert ids == ["first", "second"]


async def test_request_id_reaches_logs_on_the_async_path(async_client, monkeypatch, json_lines):
    monkeypatch.setattr(health, "_check_database", _fail_database)

    await async_client.get("/readyz", headers={"X-Request-ID": "async-7"})

    line = next(entry for entry in json_lines() if entry["logger"] == "agentstore.health")
    assert line["request_id"] == "async-7"


def test_djangos_response_log_carries_the_request_id_but_not_the_query_string(
    client, monkeypatch, json_lines
):
    monkeypatch.setattr(health, "_check_database", _fail_database)

    client.get("/readyz?api_key=sk-querystringsecret123", headers={"X-Request-ID": "r-503"})

    line = next(entry for entry in json_lines() if entry["logger"] == "django.request")
    assert line["message"] == "Service Unavailable: /readyz"
    assert line["request_id"] == "r-503"
    assert line["status_code"] == 503
    assert (line["method"], line["path"]) == ("GET", "/readyz")
    assert "querystringsecret" not in json.dumps(json_lines())


def test_outside_a_request_the_id_is_a_dash_until_bound(json_lines):
    log = logging.getLogger("agentstore.tests.logging")

    log.warning("before")
    token = bind_request_id("run-123")
    try:
        log.warning("during")
    finally:
        reset_request_id(token)

    assert [e["request_id"] for e in json_lines()] == ["-", "run-123"]
    assert current_request_id() == "-"


def test_json_output_is_one_valid_object_per_line(json_lines):
    log = logging.getLogger("agentstore.tests.logging")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    log.warning('quote " newline\n and 中文', extra={"run_id": 7, "at": when, "tokens_in": 12})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")

    first, second = json_lines()
    assert first["message"] == 'quote " newline\n and 中文'
    assert first["run_id"] == 7
    assert first["at"] == "2026-01-02 03:04:05+00:00"
    assert first["tokens_in"] == 12
    assert first["logger"] == "agentstore.tests.logging"
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert second["level"] == "ERROR"
    assert second["exc"].startswith("Traceback (most recent call last):")
    assert second["exc"].endswith("ValueError: boom")


def test_secret_looking_extra_fields_are_masked(json_lines):
    log = logging.getLogger("agentstore.tests.logging")

    log.warning("calling", extra={"api_key": "sk-x", "auth_token": "t", "password": "p"})

    line = json_lines()[0]
    assert (line["api_key"], line["auth_token"], line["password"]) == ("***", "***", "***")


def test_credentials_in_messages_and_tracebacks_are_redacted(json_lines):
    log = logging.getLogger("agentstore.tests.logging")
    dsn = "postgres://app:hunter2@db.internal:5432/store"

    log.warning("connecting to %s with Bearer abc.def-ghi", dsn)
    try:
        raise ConnectionError(f"cannot reach {dsn} using sk-live0123456789abcdef")
    except ConnectionError:
        log.exception("failed")

    first, second = json_lines()
    assert first["message"] == (
        "connecting to postgres://***@db.internal:5432/store with Bearer ***"
    )
    assert second["exc"].endswith(
        "ConnectionError: cannot reach postgres://***@db.internal:5432/store using sk-***"
    )
    assert "hunter2" not in json.dumps([first, second])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:pw@host:6379/0", "redis://***@host:6379/0"),
        ("Authorization: bearer eyJhbGciOi.x.y", "Authorization: bearer ***"),
        ("key sk-ant-api03-abcdefghijklmnop", "key sk-***"),
        ("tokens_in=5 path=/a/b sk-short", "tokens_in=5 path=/a/b sk-short"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected
