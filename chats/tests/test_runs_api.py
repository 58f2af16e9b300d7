"""The runs API: one-off runs, status, stored events, stop — scoped to the run's owner."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from agents.models import Agent
from agents.tests.factories import AgentFactory, InstallFactory
from chats.models import Run
from chats.tests.runtime_helpers import agent_version, demo_model, draft_version, fake_model
from tests.fakes.openai_server import Reply

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def installed(user):
    version = agent_version(demo_model(), agent_type="dialog")
    InstallFactory(user=user, agent=version.agent)
    return version.agent


def start(client, agent_id, captured, **body) -> dict:
    with captured(execute=True):
        response = client.post(
            f"/api/v1/agents/{agent_id}/run", {"input": "Hello", **body}, format="json"
        )
    return response


def test_a_user_who_installed_the_agent_runs_it_and_reads_the_result(
    user, installed, django_capture_on_commit_callbacks
):
    client = client_for(user)

    response = start(client, installed.pk, django_capture_on_commit_callbacks)

    assert response.status_code == 202
    body = response.json()
    run_id = body["data"]["run_id"]
    assert body["data"]["status"] == "pending"
    detail = client.get(f"/api/v1/runs/{run_id}").json()["data"]
    assert detail["status"] == "completed"
    assert detail["source"] == "oneoff"
    assert detail["input"] == "Hello"
    assert detail["output"].startswith("I am the offline demo model")
    assert detail["usage"]["total_tokens"] == (
        detail["usage"]["input_tokens"] + detail["usage"]["output_tokens"]
    )
    assert detail["error"] is None
    assert detail["agent_version"] == "1.0.0"
    assert detail["model"] == "Demo model (offline)"
    assert detail["attempt"] == 1
    assert detail["duration_ms"] >= 0
    assert detail["ttft_ms"] >= 0
    assert [step["kind"] for step in detail["steps"]] == ["model_call"]


def test_events_are_returned_in_order_after_a_sequence_number(
    user, installed, django_capture_on_commit_callbacks
):
    client = client_for(user)
    run_id = start(client, installed.pk, django_capture_on_commit_callbacks).json()["data"][
        "run_id"
    ]

    everything = client.get(f"/api/v1/runs/{run_id}/events").json()["data"]
    rest = client.get(f"/api/v1/runs/{run_id}/events?after=2").json()["data"]
    page = client.get(f"/api/v1/runs/{run_id}/events?after=1&limit=2").json()["data"]

    items = everything["items"]
    assert [e["seq"] for e in items] == list(range(1, len(items) + 1))
    assert items[0]["type"] == "RUN_STARTED"
    assert items[-1]["type"] == "RUN_FINISHED"
    assert {e["runId"] for e in items} == {run_id}
    assert everything["finished"] is True
    assert everything["status"] == "completed"
    assert everything["next_after"] == len(items)
    assert rest["items"] == items[2:]
    assert page["items"] == items[1:3]
    assert page["next_after"] == 3


@pytest.mark.parametrize("after", ["x", "-1"])
def test_a_bad_after_is_a_bad_request(user, installed, django_capture_on_commit_callbacks, after):
    client = client_for(user)
    run_id = start(client, installed.pk, django_capture_on_commit_callbacks).json()["data"][
        "run_id"
    ]

    response = client.get(f"/api/v1/runs/{run_id}/events?after={after}")

    assert response.status_code == 400
    assert response.json()["code"] == 40001


def test_another_users_run_is_not_found(
    user, other_user, installed, django_capture_on_commit_callbacks
):
    run_id = start(client_for(user), installed.pk, django_capture_on_commit_callbacks).json()[
        "data"
    ]["run_id"]
    other = client_for(other_user)

    responses = [
        other.get(f"/api/v1/runs/{run_id}"),
        other.get(f"/api/v1/runs/{run_id}/events"),
        other.post(f"/api/v1/runs/{run_id}/stop"),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert {r.json()["code"] for r in responses} == {40401}


def test_runs_list_shows_only_my_runs(
    user, other_user, installed, django_capture_on_commit_callbacks, django_assert_num_queries
):
    start(client_for(user), installed.pk, django_capture_on_commit_callbacks)
    start(client_for(user), installed.pk, django_capture_on_commit_callbacks)
    InstallFactory(user=other_user, agent=installed)
    start(client_for(other_user), installed.pk, django_capture_on_commit_callbacks)
    client = client_for(user)

    with django_assert_num_queries(2):
        body = client.get("/api/v1/runs").json()["data"]

    assert body["total"] == 2
    assert {item["status"] for item in body["items"]} == {"completed"}


def test_a_user_who_did_not_install_a_store_agent_may_not_run_it(user):
    version = agent_version(demo_model())

    response = client_for(user).post(
        f"/api/v1/agents/{version.agent_id}/run", {"input": "Hi"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["code"] == 40301
    assert Run.objects.count() == 0


@pytest.mark.parametrize("agent_id", ["not-a-uuid", str(uuid.uuid4())])
def test_an_unknown_agent_is_not_found(user, agent_id):
    response = client_for(user).post(
        f"/api/v1/agents/{agent_id}/run", {"input": "Hi"}, format="json"
    )

    assert response.status_code == 404


def test_another_developers_draft_agent_is_not_found(user, developer):
    agent = AgentFactory(developer=developer, status=Agent.Status.DRAFT)
    draft_version(agent, demo_model())

    response = client_for(user).post(
        f"/api/v1/agents/{agent.pk}/run", {"input": "Hi"}, format="json"
    )

    assert response.status_code == 404


def test_the_developer_runs_a_draft_only_agent(developer, django_capture_on_commit_callbacks):
    agent = AgentFactory(developer=developer, status=Agent.Status.DRAFT)
    version = draft_version(agent, demo_model())
    client = client_for(developer)

    response = start(client, agent.pk, django_capture_on_commit_callbacks)

    assert response.status_code == 202
    run = Run.objects.get(pk=response.json()["data"]["run_id"])
    assert (run.agent_version_id, run.status) == (version.pk, Run.Status.COMPLETED)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": ""}, "input"),
        ({"input": "x" * 20001}, "input"),
        ({}, "input"),
        ({"input": "Hi", "surprise": 1}, "surprise"),
        ({"input": "Hi", "callback_url": "ftp://example.com/x"}, "callback_url"),
        ({"input": "Hi", "callback_url": "http://169.254.169.254/latest"}, "callback_url"),
    ],
)
def test_bad_input_is_a_validation_error(user, installed, body, field):
    response = client_for(user).post(f"/api/v1/agents/{installed.pk}/run", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == 40002
    assert field in response.json()["details"]
    assert Run.objects.count() == 0


def test_too_many_active_runs_is_rate_limited(user, installed, settings):
    settings.MAX_CONCURRENT_RUNS_PER_USER = 1
    Run.objects.create(
        user=user, agent=installed, agent_version=installed.current_version, input={"text": "a"}
    )

    response = client_for(user).post(
        f"/api/v1/agents/{installed.pk}/run", {"input": "Hi"}, format="json"
    )

    assert response.status_code == 429
    assert response.json()["code"] == 42901
    assert response.json()["details"]["retry_after"] == 5
    assert response["Retry-After"] == "5"


def test_stop_cancels_a_pending_run(user, installed):
    client = client_for(user)
    run_id = client.post(
        f"/api/v1/agents/{installed.pk}/run", {"input": "Hi"}, format="json"
    ).json()["data"]["run_id"]

    response = client.post(f"/api/v1/runs/{run_id}/stop")

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "cancelled"
    assert response.json()["data"]["cancel_requested_at"] is not None
    events = client.get(f"/api/v1/runs/{run_id}/events").json()["data"]["items"]
    assert [e["type"] for e in events] == ["RUN_STARTED", "RUN_FINISHED"]


def test_the_callback_url_receives_the_result(user, fake_llm, django_capture_on_commit_callbacks):
    fake_llm.queue(Reply(text="Forty-two."))
    version = agent_version(fake_model(fake_llm), agent_type="dialog")
    InstallFactory(user=user, agent=version.agent)

    response = start(
        client_for(user),
        version.agent_id,
        django_capture_on_commit_callbacks,
        callback_url=f"{fake_llm.url}/hooks/run-done",
    )

    run_id = response.json()["data"]["run_id"]
    hook = next(r for r in fake_llm.requests if r.path == "/hooks/run-done")
    assert hook.method == "POST"
    assert hook.headers["x-agentstore-run"] == run_id
    assert hook.body["run_id"] == run_id
    assert hook.body["status"] == "completed"
    assert hook.body["output"] == "Forty-two."
    assert hook.body["error"] is None


def test_anonymous_requests_are_refused(installed, api_client):
    response = api_client.post(f"/api/v1/agents/{installed.pk}/run", {"input": "Hi"}, format="json")

    assert response.status_code == 401
