from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import translation

from accounts.models import AuditLog, Role
from accounts.tests.factories import UserFactory
from agents import selectors, services
from agents.config import default_config
from agents.models import Agent, AgentVersion, Install, Notification, Rating
from agents.tests.factories import (
    AgentFactory,
    AgentVersionFactory,
    InstallFactory,
    KnowledgeBaseFactory,
    SkillFactory,
    SkillVersionFactory,
    published_agent,
)
from agentstore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed


@pytest.fixture(autouse=True)
def _english():
    # Messages are asserted in English, whatever an earlier test left active.
    with translation.override("en"):
        yield


@pytest.fixture
def dan(db):
    return UserFactory(username="dan", role=Role.DEVELOPER)


@pytest.fixture
def draft(developer):
    agent = services.agent_create(developer, data={"name": "Helper"})
    return services.agent_version_create(
        developer, agent=agent, version="1.0.0", changelog="First.", config=default_config()
    )


def _submit(actor, version, capture):
    with capture(execute=True):
        return services.agent_version_submit(actor, version=version)


def _approved(developer, reviewer, capture, *, version="1.0.0", agent=None):
    if agent is None:
        agent = services.agent_create(developer, data={"name": f"Agent {version}"})
    draft = services.agent_version_create(
        developer, agent=agent, version=version, changelog="Changes.", config=default_config()
    )
    _submit(developer, draft, capture)
    return services.review_approve(reviewer, version=draft, note="ok")


# --- agents -------------------------------------------------------------------------------


def test_plain_user_cannot_create_agents(user):
    with pytest.raises(PermissionDenied):
        services.agent_create(user, data={"name": "Nope"})


def test_create_agent_makes_unique_slug_tags_and_audit(developer):
    first = services.agent_create(developer, data={"name": "Mail Bot", "tags": ["Email", "email"]})
    second = services.agent_create(developer, data={"name": "Mail Bot"})

    assert (first.slug, second.slug) == ("mail-bot", "mail-bot-2")
    assert list(first.tags.values_list("slug", flat=True)) == ["email"]
    assert first.status == Agent.Status.DRAFT
    assert AuditLog.objects.filter(action="agent.create", object_id=str(first.pk)).count() == 1


def test_drafts_of_other_developers_are_not_found(developer, dan):
    agent = services.agent_create(developer, data={"name": "Secret"})

    with pytest.raises(NotFound):
        selectors.agent_for_developer(dan, agent.pk)
    with pytest.raises(NotFound):
        services.agent_update(dan, agent=agent, data={"name": "Mine now"})
    assert list(selectors.agents_for_developer(dan)) == []


def test_collaborator_edits_drafts_but_cannot_archive_or_delete(developer, dan):
    agent = services.agent_create(developer, data={"name": "Shared"})
    services.agent_add_collaborator(developer, agent=agent, user=dan)

    services.agent_update(dan, agent=agent, data={"short_description": "Edited by Dan"})
    services.agent_version_create(dan, agent=agent, version="0.1.0", changelog="x")

    assert selectors.agent_for_developer(dan, agent.pk).short_description == "Edited by Dan"
    with pytest.raises(PermissionDenied):
        services.agent_archive(dan, agent=agent)
    with pytest.raises(PermissionDenied):
        services.agent_delete(dan, agent=agent)


def test_removed_collaborator_loses_access(developer, dan):
    agent = services.agent_create(developer, data={"name": "Shared"})
    services.agent_add_collaborator(developer, agent=agent, user=dan)
    services.agent_remove_collaborator(developer, agent=agent, user=dan)

    with pytest.raises(NotFound):
        selectors.agent_for_developer(dan, agent.pk)


def test_only_developers_can_collaborate(developer, user):
    agent = services.agent_create(developer, data={"name": "Shared"})

    with pytest.raises(ValidationFailed):
        services.agent_add_collaborator(developer, agent=agent, user=user)


def test_published_agent_cannot_be_deleted_only_archived(developer):
    agent = published_agent(developer=developer)

    with pytest.raises(Conflict):
        services.agent_delete(developer, agent=agent)
    services.agent_archive(developer, agent=agent)

    assert Agent.objects.get(pk=agent.pk).status == Agent.Status.ARCHIVED
    assert not selectors.store_agents().filter(pk=agent.pk).exists()


def test_draft_agent_can_be_deleted_by_owner(developer):
    agent = services.agent_create(developer, data={"name": "Temp"})

    services.agent_delete(developer, agent=agent)

    assert not Agent.objects.filter(pk=agent.pk).exists()


# --- versions -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.0-"])
def test_version_must_be_semver(developer, bad):
    agent = services.agent_create(developer, data={"name": "A"})

    with pytest.raises(ValidationFailed) as exc:
        services.agent_version_create(developer, agent=agent, version=bad)
    assert list(exc.value.details) == ["version"]


@pytest.mark.parametrize("version", ["1.0.0", "0.9.9", "1.0.0-rc.1"])
def test_version_must_be_new_and_greater(draft, developer, version):
    with pytest.raises(ValidationFailed) as exc:
        services.agent_version_create(developer, agent=draft.agent, version=version)
    assert list(exc.value.details) == ["version"]


def test_new_version_copies_newest_config_when_none_given(draft, developer):
    services.agent_version_update(
        developer, version=draft, data={"config": {"agent_type": "dialog", "system_prompt": "Hi"}}
    )

    newer = services.agent_version_create(developer, agent=draft.agent, version="1.1.0")

    assert newer.config["system_prompt"] == "Hi"
    assert newer.config["agent_type"] == "dialog"
    assert Agent.objects.get(pk=draft.agent_id).agent_type == "dialog"


def test_draft_config_with_schema_errors_is_refused(draft, developer):
    with pytest.raises(ValidationFailed) as exc:
        services.agent_version_update(
            developer, version=draft, data={"config": {"agent_type": "react", "memory": 3}}
        )
    assert exc.value.code == 40002
    assert exc.value.details["config"][0]["path"] == "$.memory"


@pytest.mark.parametrize(
    "status",
    [AgentVersion.Status.SUBMITTED, AgentVersion.Status.APPROVED, AgentVersion.Status.REJECTED],
)
def test_submitted_or_reviewed_version_is_immutable(developer, status):
    version = AgentVersionFactory(agent=AgentFactory(developer=developer), status=status)

    with pytest.raises(Conflict) as exc:
        services.agent_version_update(developer, version=version, data={"changelog": "sneaky"})
    assert exc.value.code == 40901


def test_submit_refuses_invalid_configuration(developer, django_capture_on_commit_callbacks):
    version = AgentVersionFactory(
        agent=AgentFactory(developer=developer), config={"agent_type": "nope"}
    )

    with pytest.raises(ValidationFailed) as exc:
        _submit(developer, version, django_capture_on_commit_callbacks)

    assert exc.value.details["config"][0]["path"] == "$.agent_type"
    assert AgentVersion.objects.get(pk=version.pk).status == AgentVersion.Status.DRAFT


def test_submit_refuses_another_users_private_knowledge_base(
    draft, developer, dan, django_capture_on_commit_callbacks
):
    kb = KnowledgeBaseFactory(owner=dan)
    config = {**default_config(), "knowledge": {"knowledge_base_ids": [str(kb.pk)]}}
    services.agent_version_update(developer, version=draft, data={"config": config})

    with pytest.raises(ValidationFailed) as exc:
        _submit(developer, draft, django_capture_on_commit_callbacks)

    assert exc.value.details["config"][0]["code"] == "reference"


def test_submit_refuses_another_users_private_skill(
    draft, developer, dan, django_capture_on_commit_callbacks
):
    sv = SkillVersionFactory(skill=SkillFactory(owner=dan))
    config = {**default_config(), "skills": [{"skill_id": str(sv.skill_id), "version": "1.0.0"}]}
    services.agent_version_update(developer, version=draft, data={"config": config})

    with pytest.raises(ValidationFailed) as exc:
        _submit(developer, draft, django_capture_on_commit_callbacks)

    assert exc.value.details["config"][0]["path"] == "$.skills[0]"


def test_submit_runs_checks_after_commit(draft, developer, django_capture_on_commit_callbacks):
    _submit(developer, draft, django_capture_on_commit_callbacks)

    version = AgentVersion.objects.get(pk=draft.pk)
    assert version.status == AgentVersion.Status.SUBMITTED
    assert version.check_status == AgentVersion.CheckStatus.PASSED
    assert [(r["name"], r["status"]) for r in version.check_results] == [
        ("schema", "pass"),
        ("references", "pass"),
        ("skill_analysis", "skipped"),
        ("mcp_tools", "skipped"),
        ("persona_variables", "pass"),
        ("smoke_run", "pass"),
    ]
    smoke = version.check_results[-1]
    assert smoke["message"] == (
        f"The agent answered on the demo model in {smoke['details']['duration_ms']} ms."
    )


def test_running_checks_twice_does_nothing(draft, developer, django_capture_on_commit_callbacks):
    _submit(developer, draft, django_capture_on_commit_callbacks)

    assert services.review_run_checks(version_id=str(draft.pk)) is None


def test_skill_static_analysis_errors_fail_the_checks_and_block_approval(
    draft, developer, reviewer, django_capture_on_commit_callbacks
):
    sv = SkillVersionFactory(
        skill=SkillFactory(owner=developer),
        analysis={"findings": [{"severity": "error", "message": "import os.system"}]},
    )
    config = {**default_config(), "skills": [{"skill_id": str(sv.skill_id), "version": "1.0.0"}]}
    services.agent_version_update(developer, version=draft, data={"config": config})
    _submit(developer, draft, django_capture_on_commit_callbacks)

    version = AgentVersion.objects.get(pk=draft.pk)
    assert version.check_status == AgentVersion.CheckStatus.FAILED
    assert version.check_results[2]["status"] == "fail"
    with pytest.raises(Conflict) as exc:
        services.review_approve(reviewer, version=version)
    assert exc.value.code == 40903


def test_one_pending_submission_per_agent(draft, developer, django_capture_on_commit_callbacks):
    _submit(developer, draft, django_capture_on_commit_callbacks)
    second = services.agent_version_create(
        developer, agent=draft.agent, version="1.1.0", changelog="More."
    )

    with pytest.raises(Conflict) as exc:
        _submit(developer, second, django_capture_on_commit_callbacks)
    assert exc.value.code == 40904


# --- review -------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", ["developer", "user"])
def test_non_reviewer_cannot_approve(
    request, draft, developer, django_capture_on_commit_callbacks, actor
):
    _submit(developer, draft, django_capture_on_commit_callbacks)

    with pytest.raises(PermissionDenied):
        services.review_approve(request.getfixturevalue(actor), version=draft)


def test_approval_publishes_version_and_agent(
    draft, developer, reviewer, django_capture_on_commit_callbacks
):
    _submit(developer, draft, django_capture_on_commit_callbacks)

    services.review_approve(reviewer, version=draft, note="Looks good")

    agent = Agent.objects.get(pk=draft.agent_id)
    version = AgentVersion.objects.get(pk=draft.pk)
    assert (agent.status, agent.current_version_id) == (Agent.Status.PUBLISHED, draft.pk)
    assert agent.published_at is not None
    assert (version.status, version.is_current, version.reviewer) == ("approved", True, reviewer)
    assert selectors.store_agent(agent.slug) == agent
    assert AuditLog.objects.filter(action="agent_version.approve").count() == 1


def test_new_approval_swaps_the_current_version(
    developer, reviewer, django_capture_on_commit_callbacks
):
    first = _approved(developer, reviewer, django_capture_on_commit_callbacks)
    second = _approved(
        developer, reviewer, django_capture_on_commit_callbacks, version="1.1.0", agent=first.agent
    )

    assert list(
        AgentVersion.objects.filter(agent=first.agent, is_current=True).values_list("pk", flat=True)
    ) == [second.pk]
    assert AgentVersion.objects.get(pk=first.pk).status == AgentVersion.Status.APPROVED
    assert Agent.objects.get(pk=first.agent_id).current_version_id == second.pk


def test_two_current_versions_are_refused_by_the_database(developer):
    agent = published_agent(developer=developer)

    with pytest.raises(IntegrityError), transaction.atomic():
        AgentVersionFactory(
            agent=agent, version="2.0.0", status=AgentVersion.Status.APPROVED, is_current=True
        )


def test_a_current_version_must_be_approved_in_the_database(developer):
    agent = AgentFactory(developer=developer)

    with pytest.raises(IntegrityError), transaction.atomic():
        AgentVersionFactory(agent=agent, status=AgentVersion.Status.DRAFT, is_current=True)


@pytest.mark.parametrize(
    "status",
    [
        AgentVersion.Status.DRAFT,
        AgentVersion.Status.SUBMITTED,
        AgentVersion.Status.REJECTED,
        AgentVersion.Status.DEPRECATED,
    ],
)
def test_the_database_refuses_a_current_version_that_is_not_approved(developer, status):
    agent = published_agent(developer=developer)
    other = AgentVersionFactory(agent=agent, version="2.0.0", status=status)

    with pytest.raises(IntegrityError), transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(current_version=other)


def test_the_database_refuses_another_agents_version_as_current(developer, other_user):
    agent = published_agent(developer=developer)
    elsewhere = published_agent(developer=other_user)

    with pytest.raises(IntegrityError), transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(current_version=elsewhere.current_version)


def test_the_database_keeps_the_current_version_approved(developer):
    agent = published_agent(developer=developer)

    with pytest.raises(IntegrityError), transaction.atomic():
        AgentVersion.objects.filter(pk=agent.current_version_id).update(
            status=AgentVersion.Status.DEPRECATED
        )
    assert AgentVersion.objects.get(pk=agent.current_version_id).status == "approved"


def test_approving_an_update_notifies_installers(
    developer, reviewer, user, other_user, django_capture_on_commit_callbacks
):
    first = _approved(developer, reviewer, django_capture_on_commit_callbacks)
    services.agent_install(user, agent=first.agent)
    services.agent_install(other_user, agent=first.agent)

    second = _approved(
        developer, reviewer, django_capture_on_commit_callbacks, version="2.0.0", agent=first.agent
    )

    notices = Notification.objects.filter(kind=Notification.Kind.AGENT_UPDATED)
    assert sorted(n.user.username for n in notices) == ["alice", "bob"]
    assert {n.version_id for n in notices} == {second.pk}
    assert notices[0].message == f"{first.agent.name} was updated to version 2.0.0."
    assert selectors.installs_for(user).get().update_available is True


def test_first_approval_notifies_only_the_developer(
    developer, reviewer, django_capture_on_commit_callbacks
):
    _approved(developer, reviewer, django_capture_on_commit_callbacks)

    assert list(Notification.objects.values_list("user__username", "kind")) == [
        ("dora", "version_approved")
    ]


def test_reject_needs_a_note_and_keeps_version_out_of_the_store(
    draft, developer, reviewer, django_capture_on_commit_callbacks
):
    _submit(developer, draft, django_capture_on_commit_callbacks)

    with pytest.raises(ValidationFailed):
        services.review_reject(reviewer, version=draft, note="  ")
    services.review_reject(reviewer, version=draft, note="Prompt leaks secrets.")

    version = AgentVersion.objects.get(pk=draft.pk)
    assert (version.status, version.review_note) == ("rejected", "Prompt leaks secrets.")
    assert not selectors.store_agents().filter(pk=draft.agent_id).exists()
    with pytest.raises(NotFound):
        selectors.store_agent(draft.agent_id)
    assert Notification.objects.get().kind == Notification.Kind.VERSION_REJECTED


def test_approving_a_draft_is_a_conflict(draft, reviewer):
    with pytest.raises(Conflict):
        services.review_approve(reviewer, version=draft)


def test_deprecate_only_non_current_approved_versions(
    developer, reviewer, django_capture_on_commit_callbacks
):
    first = _approved(developer, reviewer, django_capture_on_commit_callbacks)
    with pytest.raises(Conflict):
        services.agent_version_deprecate(developer, version=first)
    second = _approved(
        developer, reviewer, django_capture_on_commit_callbacks, version="1.1.0", agent=first.agent
    )

    services.agent_version_deprecate(developer, version=first)

    assert AgentVersion.objects.get(pk=first.pk).status == AgentVersion.Status.DEPRECATED
    assert list(selectors.versions_visible_in_store(first.agent)) == [
        AgentVersion.objects.get(pk=second.pk),
        AgentVersion.objects.get(pk=first.pk),
    ]


# --- duplicate ----------------------------------------------------------------------------


def test_anyone_developing_can_duplicate_a_builtin(developer):
    builtin = Agent.objects.get(slug="builtin-reflexion")

    copy = services.agent_duplicate(developer, source=builtin)

    version = copy.versions.get()
    assert (copy.developer, copy.status, copy.is_builtin) == (developer, "draft", False)
    assert (version.version, version.status) == ("0.1.0", AgentVersion.Status.DRAFT)
    assert version.config == builtin.current_version.config
    assert copy.name == "Reflective Writer (copy)"


def test_duplicating_another_developers_draft_is_not_found(developer, dan):
    theirs = services.agent_create(dan, data={"name": "Private"})

    with pytest.raises(NotFound):
        services.agent_duplicate(developer, source=theirs)


def test_plain_user_cannot_duplicate(user):
    with pytest.raises(PermissionDenied):
        services.agent_duplicate(user, source=Agent.objects.get(slug="builtin-react"))


# --- installs and ratings -----------------------------------------------------------------


def test_installing_an_unpublished_agent_is_not_found(user, developer):
    agent = services.agent_create(developer, data={"name": "Draft"})

    with pytest.raises(NotFound):
        services.agent_install(user, agent=agent)


def test_install_twice_is_a_conflict_and_counts_once(user):
    agent = published_agent()
    services.agent_install(user, agent=agent)

    with pytest.raises(Conflict):
        services.agent_install(user, agent=agent)
    assert Agent.objects.get(pk=agent.pk).install_count == 1


def test_install_and_uninstall_keep_the_counter_consistent(user, other_user):
    agent = published_agent()
    services.agent_install(user, agent=agent)
    services.agent_install(other_user, agent=agent)
    services.agent_uninstall(user, agent=agent)

    assert (
        Agent.objects.get(pk=agent.pk).install_count
        == Install.objects.filter(agent=agent).count()
        == 1
    )
    with pytest.raises(NotFound):
        services.agent_uninstall(user, agent=agent)


def test_install_touch_records_usage(user):
    agent = published_agent()
    install = services.agent_install(user, agent=agent)

    services.install_touch(user, agent_id=agent.pk)
    services.install_touch(user, agent_id=agent.pk)

    install.refresh_from_db()
    assert install.usage_count == 2
    assert install.first_used_at <= install.last_used_at


def test_rating_needs_an_install(user):
    agent = published_agent()

    with pytest.raises(PermissionDenied) as exc:
        services.rating_submit(user, agent=agent, stars=5)
    assert exc.value.code == 40301


def test_rating_twice_is_a_conflict(user):
    agent = published_agent()
    InstallFactory(user=user, agent=agent)
    services.rating_submit(user, agent=agent, stars=5)

    with pytest.raises(Conflict) as exc:
        services.rating_submit(user, agent=agent, stars=1)
    assert exc.value.code == 40901


@pytest.mark.parametrize("stars", [0, 6, "5", 4.5, True, None])
def test_rating_must_be_one_to_five(user, stars):
    agent = published_agent()
    InstallFactory(user=user, agent=agent)

    with pytest.raises(ValidationFailed):
        services.rating_submit(user, agent=agent, stars=stars)


def test_rating_counters_follow_submissions_and_edits(user, other_user):
    agent = published_agent()
    InstallFactory(user=user, agent=agent)
    InstallFactory(user=other_user, agent=agent)

    services.rating_submit(user, agent=agent, stars=5, text="Great")
    services.rating_submit(other_user, agent=agent, stars=2)
    services.rating_update(other_user, agent=agent, stars=3)

    agent.refresh_from_db()
    assert (agent.rating_count, agent.rating_sum, agent.rating_avg) == (2, 8, Decimal("4.00"))


def test_rating_average_is_rounded(user, other_user, developer):
    agent = published_agent(developer=developer)
    for person, stars in [(user, 5), (other_user, 4), (developer, 4)]:
        InstallFactory(user=person, agent=agent)
        services.rating_submit(person, agent=agent, stars=stars)

    agent.refresh_from_db()
    assert agent.rating_avg == Decimal("4.33")


def test_only_the_agents_developer_replies(user, other_user, developer):
    agent = published_agent(developer=developer)
    InstallFactory(user=user, agent=agent)
    rating = services.rating_submit(user, agent=agent, stars=3)

    with pytest.raises(PermissionDenied):
        services.rating_reply(other_user, rating=rating, reply="Thanks!")
    services.rating_reply(developer, rating=rating, reply="Fixed in 1.1")

    assert Rating.objects.get(pk=rating.pk).developer_reply == "Fixed in 1.1"


def test_notifications_are_private(
    user, other_user, developer, reviewer, django_capture_on_commit_callbacks
):
    _approved(developer, reviewer, django_capture_on_commit_callbacks)
    notice = Notification.objects.get(user=developer)

    with pytest.raises(NotFound):
        services.notification_mark_read(other_user, notification_id=notice.pk)
    services.notification_mark_read(developer, notification_id=notice.pk)

    assert list(selectors.notifications_for(developer, unread_only=True)) == []


def test_every_transition_is_audited(developer, reviewer, user, django_capture_on_commit_callbacks):
    version = _approved(developer, reviewer, django_capture_on_commit_callbacks)
    services.agent_install(user, agent=version.agent)
    services.rating_submit(user, agent=version.agent, stars=4)
    services.rating_update(user, agent=version.agent, stars=5)
    services.agent_uninstall(user, agent=version.agent)
    services.agent_archive(developer, agent=version.agent)

    assert list(
        AuditLog.objects.exclude(action="agent.builtin_create")
        .order_by("id")
        .values_list("action", "actor_label")
    ) == [
        ("agent.create", "dora"),
        ("agent_version.create", "dora"),
        ("agent_version.submit", "dora"),
        ("agent_version.checks", "system"),
        ("agent_version.approve", "rex"),
        ("agent.install", "alice"),
        ("rating.create", "alice"),
        ("rating.update", "alice"),
        ("agent.uninstall", "alice"),
        ("agent.archive", "dora"),
    ]


def test_model_clean_refuses_config_changes_after_submission(developer):
    version = AgentVersionFactory(
        agent=AgentFactory(developer=developer), status=AgentVersion.Status.SUBMITTED
    )
    version.config = {**version.config, "system_prompt": "changed"}

    with pytest.raises(DjangoValidationError):
        version.clean()


def test_role_permission_names_of_the_store_exist(db):
    from django.contrib.auth.models import Permission

    from accounts.roles import ROLE_PERMISSIONS

    names = sorted(
        {
            name
            for perms in ROLE_PERMISSIONS.values()
            for name in perms
            if name.startswith("agents.")
        }
    )
    existing = {
        f"agents.{codename}"
        for codename in Permission.objects.filter(content_type__app_label="agents").values_list(
            "codename", flat=True
        )
    }
    assert [name for name in names if name not in existing] == []


@pytest.mark.parametrize(
    ("role", "perm", "expected"),
    [
        (Role.USER, "agents.install_agent", True),
        (Role.USER, "agents.add_agent", False),
        (Role.DEVELOPER, "agents.submit_agentversion", True),
        (Role.DEVELOPER, "agents.review_agentversion", False),
        (Role.REVIEWER, "agents.review_agentversion", True),
    ],
)
def test_roles_grant_store_permissions(db, role, perm, expected):
    assert UserFactory(role=role).has_perm(perm) is expected


def test_notices_are_written_in_each_recipients_language(
    developer, reviewer, user, other_user, django_capture_on_commit_callbacks
):
    other_user.language = "zh-hans"
    other_user.save(update_fields=["language"])
    first = _approved(developer, reviewer, django_capture_on_commit_callbacks)
    services.agent_install(user, agent=first.agent)
    services.agent_install(other_user, agent=first.agent)

    _approved(
        developer, reviewer, django_capture_on_commit_callbacks, version="2.0.0", agent=first.agent
    )

    params = {"agent": first.agent.name, "version": "2.0.0"}
    with translation.override("zh-hans"):
        chinese = str(services.NOTIFICATION_MESSAGES["agent_updated"]) % params
    english = f"{first.agent.name} was updated to version 2.0.0."
    assert chinese != english
    notices = dict(
        Notification.objects.filter(kind="agent_updated").values_list("user__username", "message")
    )
    assert notices == {"alice": english, "bob": chinese}
