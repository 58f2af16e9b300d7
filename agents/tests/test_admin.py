from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditLog, Role
from accounts.tests.factories import UserFactory
from agents import services
from agents.config import default_config
from agents.models import Agent, AgentVersion


@pytest.fixture(autouse=True)
def _english():
    # Messages are asserted in English, whatever an earlier test left active.
    with translation.override("en"):
        yield


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def submitted(developer, django_capture_on_commit_callbacks):
    agent = services.agent_create(developer, data={"name": "Helper"})
    version = services.agent_version_create(
        developer, agent=agent, version="1.0.0", changelog="First.", config=default_config()
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.agent_version_submit(developer, version=version)
    return AgentVersion.objects.get(pk=version.pk)


def _update(developer, reviewer, approved, capture):
    config = {**default_config(), "system_prompt": "Be <brief>."}
    newer = services.agent_version_create(
        developer, agent=approved.agent, version="1.1.0", changelog="Shorter.", config=config
    )
    with capture(execute=True):
        services.agent_version_submit(developer, version=newer)
    return newer


def test_queue_lists_submissions_first(reviewer, submitted):
    response = _login(reviewer).get(reverse("admin:agents_agentversion_changelist"))

    results = list(response.context["cl"].result_list)
    assert response.status_code == 200
    assert results[0] == submitted
    assert AgentVersion.Status.DRAFT not in {v.status for v in results}


def test_change_page_shows_checks_diff_and_decision_buttons(
    reviewer, developer, submitted, django_capture_on_commit_callbacks
):
    services.review_approve(reviewer, version=submitted)
    newer = _update(developer, reviewer, submitted, django_capture_on_commit_callbacks)

    response = _login(reviewer).get(reverse("admin:agents_agentversion_change", args=[newer.pk]))

    html = response.content.decode()
    assert "smoke_run" in html
    assert "The agent answered on the demo model in" in html
    assert "<code>answer_excerpt</code> I am the offline demo model" in html
    assert 'class="diff-add"' in html
    assert "Be &lt;brief&gt;." in html
    assert 'value="approve"' in html


def test_reviewer_approves_from_the_admin(reviewer, submitted):
    url = reverse("admin:agents_agentversion_decide", args=[submitted.pk])

    response = _login(reviewer).post(url, {"decision": "approve", "note": "Fine"})

    submitted.refresh_from_db()
    assert response.status_code == 302
    assert (submitted.status, submitted.review_note) == ("approved", "Fine")
    assert Agent.objects.get(pk=submitted.agent_id).status == Agent.Status.PUBLISHED


def test_reject_without_note_is_refused_in_the_admin(reviewer, submitted):
    url = reverse("admin:agents_agentversion_decide", args=[submitted.pk])

    response = _login(reviewer).post(url, {"decision": "reject", "note": ""}, follow=True)

    submitted.refresh_from_db()
    assert submitted.status == AgentVersion.Status.SUBMITTED
    assert "Validation failed." in response.content.decode()


def test_staff_without_review_permission_cannot_decide(submitted):
    staff = UserFactory(username="sam", role=Role.DEVELOPER, is_staff=True)
    url = reverse("admin:agents_agentversion_decide", args=[submitted.pk])

    response = _login(staff).post(url, {"decision": "approve"})

    submitted.refresh_from_db()
    assert response.status_code == 403
    assert submitted.status == AgentVersion.Status.SUBMITTED


def test_non_staff_developer_is_sent_to_the_admin_login(developer, submitted):
    url = reverse("admin:agents_agentversion_decide", args=[submitted.pk])

    response = _login(developer).post(url, {"decision": "approve"})

    submitted.refresh_from_db()
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert submitted.status == AgentVersion.Status.SUBMITTED


def test_bulk_reject_asks_for_a_note(reviewer, submitted):
    client = _login(reviewer)
    url = reverse("admin:agents_agentversion_changelist")
    selection = {"action": "reject_selected", "_selected_action": [str(submitted.pk)]}

    asked = client.post(url, selection)
    done = client.post(url, {**selection, "apply": "1", "note": "Missing docs"})

    submitted.refresh_from_db()
    assert "These submissions will be rejected" in asked.content.decode()
    assert done.status_code == 302
    assert (submitted.status, submitted.review_note) == ("rejected", "Missing docs")


def test_admin_features_an_agent_and_audits_it(admin_user):
    agent = Agent.objects.get(slug="builtin-react")
    client = _login(admin_user)
    url = reverse("admin:agents_agent_changelist")
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(agent.pk),
        "form-0-is_featured": "on",
        "_save": "Save",
    }

    response = client.post(f"{url}?q=builtin-react", data)

    assert response.status_code == 302
    assert Agent.objects.get(pk=agent.pk).is_featured is True
    assert AuditLog.objects.get(action="agent.admin_update").detail == {"fields": ["is_featured"]}
