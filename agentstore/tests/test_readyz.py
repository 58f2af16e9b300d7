from __future__ import annotations

import os
import time
import uuid

import pytest
import redis
from channels.layers import get_channel_layer
from django.db import OperationalError, connection

from agentstore import health
from tests.fixtures.servers import run_asgi_server

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"
REDIS_LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def _raise(exc: Exception):
    def check(*args, **kwargs):
        raise exc

    return check


def use_redis_layer(settings, backend: str, *, host: dict | None = None, **config) -> None:
    """The configured channels-redis layer with another backend and extra options."""
    default = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": backend,
            "CONFIG": {**default, "hosts": [{**default["hosts"][0], **(host or {})}], **config},
        }
    }


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.close()


def clients_named(client: redis.Redis, name: str, *, settle: float = 2.0) -> int:
    """Connections to Redis with this client name, once closed ones have gone (Redis sees
    a client's close asynchronously)."""
    deadline = time.monotonic() + settle
    while True:
        count = sum(1 for c in client.client_list() if c["name"] == name)
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


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


@pytest.mark.integration
@pytest.mark.django_db
@pytest.mark.parametrize("backend", REDIS_LAYERS.values(), ids=REDIS_LAYERS.keys())
def test_readyz_closes_the_channel_layer_connections_it_opened(
    client, settings, redis_client, backend
):
    name = f"readyz-{uuid.uuid4().hex[:12]}"
    use_redis_layer(settings, backend, host={"client_name": name})

    statuses = [client.get("/readyz").status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert clients_named(redis_client, name) == 0


@pytest.mark.integration
def test_readyz_on_the_server_loop_leaves_no_pubsub_subscription_behind(
    settings, redis_client, transactional_db
):
    # Under an ASGI server the check shares the server loop's pub/sub connection, which
    # outlives the request: a channel left subscribed there would pile up probe by probe.
    prefix = f"readyz{uuid.uuid4().hex[:8]}."
    use_redis_layer(settings, REDIS_LAYERS["pubsub"], prefix=prefix)

    with run_asgi_server() as server:
        responses = [server.get("/readyz") for _ in range(3)]
        subscribed = redis_client.pubsub_channels(f"{prefix}*")

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert {r.json()["checks"]["channel_layer"]["backend"] for r in responses} == {
        "RedisPubSubChannelLayer"
    }
    assert subscribed == []


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
