from __future__ import annotations

import os

import pytest
from channels.layers import get_channel_layer
from django.db import OperationalError, connection

from agentstore import health

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"


def _raise(exc: Exception):
    def check(*args, **kwargs):
        raise exc

    return check


@pytest.mark.django_db
def test_readyz_reports_each_check_with_details(client):
    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    assert body["status"] == "ready"
    assert sorted(body["checks"]) == ["channel_layer", "database"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["vendor"] == connection.vendor
    assert body["checks"]["channel_layer"]["ok"] is True
    assert body["checks"]["channel_layer"]["backend"] == type(get_channel_layer()).__name__
    assert isinstance(body["checks"]["database"]["ms"], float)


@pytest.mark.django_db
def test_readyz_is_503_with_the_error_when_the_database_is_down(client, monkeypatch):
    monkeypatch.setattr(
        connection, "cursor", _raise(OperationalError("connection to server refused"))
    )

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"] == "OperationalError: connection to server refused"
    assert body["checks"]["channel_layer"]["ok"] is True


def test_readyz_is_503_when_the_channel_layer_fails(client, monkeypatch):
    layer = get_channel_layer()
    monkeypatch.setattr(layer, "send", _raise(ConnectionError("layer unreachable")))
    monkeypatch.setattr(health, "_check_database", lambda: {"vendor": "stub"})

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["channel_layer"] == {
        "ok": False,
        "error": "ConnectionError: layer unreachable",
        "ms": body["checks"]["channel_layer"]["ms"],
    }


@pytest.mark.django_db
def test_readyz_checks_the_broker_in_celery_mode_and_fails_on_a_closed_port(client, settings):
    settings.TASK_DISPATCH = "celery"
    settings.CELERY_BROKER_URL = CLOSED_PORT_BROKER

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"] == (
        "OperationalError: Error 111 connecting to 127.0.0.1:1. Connection refused."
    )
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_skips_the_broker_in_embedded_mode(client, settings):
    settings.TASK_DISPATCH = "embedded"
    settings.CELERY_BROKER_URL = CLOSED_PORT_BROKER

    response = client.get("/readyz")

    assert response.status_code == 200
    assert "broker" not in response.json()["checks"]


@pytest.mark.integration
@pytest.mark.django_db
def test_readyz_broker_check_passes_against_real_redis(client, settings):
    settings.TASK_DISPATCH = "celery"
    settings.CELERY_BROKER_URL = os.environ["REDIS_URL"]

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["broker"]["transport"] == "redis"


@pytest.mark.django_db
def test_registered_checks_are_reported(client, monkeypatch):
    monkeypatch.setitem(health._extra_checks, "vector_store", lambda: {"collections": 3})
    monkeypatch.setitem(health._extra_checks, "search", _raise(TimeoutError("no answer")))

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["vector_store"]["ok"] is True
    assert body["checks"]["vector_store"]["collections"] == 3
    assert body["checks"]["search"]["error"] == "TimeoutError: no answer"


@pytest.mark.django_db
def test_readyz_masks_credentials_in_errors(client, monkeypatch):
    error = OperationalError("could not connect to postgres://app:s3cret-pw@db.internal:5432/x")
    monkeypatch.setattr(connection, "cursor", _raise(error))

    response = client.get("/readyz")

    text = response.content.decode()
    assert "s3cret-pw" not in text
    assert response.json()["checks"]["database"]["error"] == (
        "OperationalError: could not connect to postgres://***@db.internal:5432/x"
    )


@pytest.mark.django_db
def test_a_failed_check_is_logged_as_a_warning(client, monkeypatch, caplog):
    monkeypatch.setattr(connection, "cursor", _raise(OperationalError("down")))

    with caplog.at_level("WARNING", logger="agentstore.health"):
        client.get("/readyz", headers={"X-Request-ID": "probe-1"})

    record = next(r for r in caplog.records if r.name == "agentstore.health")
    assert record.getMessage() == "readiness check database failed: OperationalError: down"
    assert record.check == "database"
