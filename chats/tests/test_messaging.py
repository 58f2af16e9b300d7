"""Chat services: sessions pinned to versions, turns stored in one transaction and
dispatched on commit, limits checked before anything is written, branches, export."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.cache import cache
from django.db import IntegrityError, transaction

from accounts.models import AuditLog
from agents.models import Agent, AgentVersion, Install
from agents.tests.factories import AgentVersionFactory, InstallFactory, published_agent
from agentstore.errors import Conflict, NotFound, PermissionDenied, RateLimited, ValidationFailed
from chats import chat_selectors, messaging
from chats.models import Chat, ChatMessage, Run
from chats.tests.factories import RunFactory
from chats.tests.runtime_helpers import agent_version, demo_model, draft_version
from integrations.system_settings import setting_set

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The per-minute counter and cached system settings live in the cache.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def version(user):
    version = agent_version(demo_model(), agent_type="dialog")
    InstallFactory(user=user, agent=version.agent)
    return version


@pytest.fixture
def chat(user, version):
    return messaging.chat_create(user, agent_id=version.agent_id)


@pytest.fixture
def answered(django_capture_on_commit_callbacks):
    """``answered(user, chat, text)``: post a message and run its answer inline."""

    def post(user, chat, text, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            turn = messaging.chat_message_post(user, chat=chat, content=text, **kwargs)
        turn.chat.refresh_from_db()
        return turn

    return post


def path_of(chat: Chat) -> list[tuple[str, str]]:
    chat.refresh_from_db()
    return [(m.role, m.content) for m in chat_selectors.branch_messages(chat)]


# --- creating chats --------------------------------------------------------------------------


def test_a_new_chat_pins_the_agents_current_version(user, version):
    chat = messaging.chat_create(user, agent_id=str(version.agent_id))

    assert chat.agent_version_id == version.pk
    assert chat.status == Chat.Status.ACTIVE
    assert chat.title == ""
    assert AuditLog.objects.filter(action="chat.create", object_id=str(chat.pk)).count() == 1


def test_a_chat_takes_the_id_its_client_chose(user, version):
    chosen = uuid.uuid4()

    chat = messaging.chat_create(user, agent_id=version.agent_id, chat_id=chosen, via="ag-ui")

    assert Chat.objects.get(pk=chosen) == chat
    assert AuditLog.objects.get(action="chat.create", object_id=str(chosen)).detail == {
        "agent": str(version.agent_id),
        "version": version.version,
        "is_test": False,
        "via": "ag-ui",
    }


def test_a_taken_chat_id_is_refused_and_the_callers_transaction_goes_on(user, version):
    taken = messaging.chat_create(user, agent_id=version.agent_id)

    with transaction.atomic():
        with pytest.raises(IntegrityError):
            messaging.chat_create(user, agent_id=version.agent_id, chat_id=taken.pk)
        assert Chat.objects.filter(user=user).count() == 1


def loaded(version, yes: bool):
    """The agent as an API caller passes it (loaded, with its current version), or None."""
    if not yes:
        return None
    return Agent.objects.select_related("current_version").get(pk=version.agent_id)


@pytest.mark.parametrize("preloaded", [False, True])
def test_a_chat_needs_the_agent_installed(other_user, version, preloaded):
    with pytest.raises(PermissionDenied, match="Install this agent"):
        messaging.chat_create(
            other_user, agent_id=version.agent_id, agent=loaded(version, preloaded)
        )


def test_a_loaded_agents_install_and_the_open_chats_are_read_in_one_statement(user, version):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    agent = loaded(version, True)
    with CaptureQueriesContext(connection) as queries:
        messaging.chat_create(user, agent_id=version.agent_id, agent=agent)

    reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT")
        and ('"agents_install"' in q["sql"] or '"chats_chat"' in q["sql"])
    ]
    assert len(reads) == 1, reads
    assert '"agents_install"' in reads[0]
    assert '"chats_chat"' in reads[0]


@pytest.mark.parametrize("agent_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_agent_is_not_found(user, agent_id):
    with pytest.raises(NotFound):
        messaging.chat_create(user, agent_id=agent_id)


def test_another_developers_unpublished_agent_is_not_found(user, developer):
    draft = AgentVersionFactory(agent__developer=developer)

    with pytest.raises(NotFound):
        messaging.chat_create(user, agent_id=draft.agent_id)


def test_the_developer_chats_without_installing(developer):
    version = agent_version(demo_model(), developer=developer)

    chat = messaging.chat_create(developer, agent_id=version.agent_id)

    assert chat.agent_version_id == version.pk


def test_an_older_released_version_may_be_chosen(user, version):
    newer = AgentVersionFactory(agent=version.agent, status=AgentVersion.Status.APPROVED)

    chat = messaging.chat_create(user, agent_id=version.agent_id, agent_version_id=str(newer.pk))

    assert chat.agent_version_id == newer.pk


def test_a_draft_version_is_for_test_chats_only(user, version):
    draft = AgentVersionFactory(agent=version.agent)

    with pytest.raises(ValidationFailed) as caught:
        messaging.chat_create(user, agent_id=version.agent_id, agent_version_id=draft.pk)

    assert caught.value.details == {
        "agent_version_id": ["Unreleased versions are for test chats only."]
    }


def test_a_version_of_another_agent_is_refused(user, version):
    elsewhere = published_agent().current_version

    with pytest.raises(ValidationFailed):
        messaging.chat_create(user, agent_id=version.agent_id, agent_version_id=elsewhere.pk)


def test_a_developer_opens_a_test_chat_on_a_draft_visible_only_to_them(developer, user):
    version = agent_version(demo_model(), developer=developer)
    draft = draft_version(version.agent, None)
    InstallFactory(user=user, agent=version.agent)

    chat = messaging.chat_create(developer, agent_id=version.agent_id, is_test=True)

    assert chat.is_test is True
    assert chat.agent_version_id == draft.pk
    assert list(chat_selectors.chats_for(developer, is_test=True)) == [chat]
    assert list(chat_selectors.chats_for(developer)) == []
    assert list(chat_selectors.chats_for(user, is_test=None)) == []
    with pytest.raises(NotFound):
        chat_selectors.chat_for(user, chat.pk)


def test_users_cannot_open_test_chats(user, version):
    with pytest.raises(PermissionDenied):
        messaging.chat_create(user, agent_id=version.agent_id, is_test=True)


def test_test_chat_turns_run_as_test_runs(developer, django_capture_on_commit_callbacks):
    version = agent_version(demo_model(), developer=developer, agent_type="dialog")
    chat = messaging.chat_create(developer, agent_id=version.agent_id, is_test=True)

    turn = messaging.chat_message_post(developer, chat=chat, content="Try me")

    assert turn.run.source == Run.Source.TEST


@pytest.mark.parametrize("preloaded", [False, True])
def test_the_session_limit_refuses_a_new_chat_until_one_is_archived(
    user, version, settings, preloaded
):
    settings.MAX_SESSIONS_PER_USER = 1
    agent = loaded(version, preloaded)
    first = messaging.chat_create(user, agent_id=version.agent_id, agent=agent)

    with pytest.raises(Conflict) as caught:
        messaging.chat_create(user, agent_id=version.agent_id, agent=agent)
    messaging.chat_update(user, chat=first, status="archived")
    second = messaging.chat_create(user, agent_id=version.agent_id, agent=agent)

    assert caught.value.message == (
        "You have 1 open chats, the most allowed. Archive or delete one first."
    )
    assert caught.value.details == {"limit": 1}
    assert second.status == Chat.Status.ACTIVE
    with pytest.raises(Conflict):
        messaging.chat_update(user, chat=first, status="active")


def test_the_session_limit_comes_from_system_settings(user, version, admin_user, settings):
    settings.MAX_SESSIONS_PER_USER = 100
    setting_set(admin_user, key="max_sessions_per_user", value=1)
    messaging.chat_create(user, agent_id=version.agent_id)

    with pytest.raises(Conflict):
        messaging.chat_create(user, agent_id=version.agent_id)


# --- sending ---------------------------------------------------------------------------------


def test_sending_stores_message_run_and_placeholder_then_dispatches_on_commit(
    user, chat, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        turn = messaging.chat_message_post(user, chat=chat, content="Hello there")
    placeholder = ChatMessage.objects.get(pk=turn.assistant_message.pk)
    run = Run.objects.get(pk=turn.run.pk)

    assert len(callbacks) == 2  # the dispatch, then the usage counter
    assert run.status == Run.Status.PENDING
    assert run.source == Run.Source.CHAT
    assert run.chat_id == chat.pk
    assert run.agent_version_id == chat.agent_version_id
    assert run.user_message_id == turn.user_message.pk
    assert run.assistant_message_id == placeholder.pk
    assert run.input == {"text": "Hello there", "context": {}}
    assert (placeholder.role, placeholder.status, placeholder.content) == (
        "assistant",
        "sending",
        "",
    )
    assert placeholder.parent_id == turn.user_message.pk
    assert placeholder.run_id == run.pk
    assert placeholder.agent_version_id == chat.agent_version_id

    callbacks[0]()
    run.refresh_from_db()
    placeholder.refresh_from_db()

    assert run.status == Run.Status.COMPLETED
    assert placeholder.status == ChatMessage.Status.SENT
    assert placeholder.content.startswith("I am the offline demo model")


def test_the_first_message_titles_the_chat_and_counters_move(user, chat, answered):
    text = "Plan a three-day trip to Kyoto for a family with two children\nwith trains"

    answered(user, chat, text)
    answered(user, chat, "And what about food?")
    chat.refresh_from_db()

    assert chat.title == "Plan a three-day trip to Kyoto for a family with two childr…"
    assert len(chat.title) == 60
    assert chat.message_count == 4
    assert chat.last_message_at is not None


def test_a_renamed_chat_keeps_its_title(user, chat, answered):
    messaging.chat_update(user, chat=chat, title="  My   trip ")

    answered(user, chat, "Hello")
    chat.refresh_from_db()

    assert chat.title == "My trip"


def test_the_usage_counter_is_not_written_inside_the_turn(
    user, chat, version, django_capture_on_commit_callbacks
):
    # The install row is shared by the user's chats with the agent: no turn holds its lock.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        CaptureQueriesContext(connection) as queries,
    ):
        messaging.chat_message_post(user, chat=chat, content="Hello")

    assert not [q for q in queries.captured_queries if '"agents_install"' in q["sql"]]
    assert Install.objects.get(user=user, agent=version.agent).usage_count == 0
    assert len(callbacks) == 2  # the dispatch, then the usage counter


def test_sending_records_usage_of_the_install_and_an_audit_row(user, chat, version, answered):
    answered(user, chat, "one")
    answered(user, chat, "two")

    install = Install.objects.get(user=user, agent=version.agent)
    assert install.usage_count == 2
    assert install.last_used_at is not None
    assert AuditLog.objects.filter(action="chat.message", object_id=str(chat.pk)).count() == 2


def test_messages_continue_the_active_branch(user, chat, answered):
    answered(user, chat, "one")
    second = answered(user, chat, "two")

    assert [role for role, _ in path_of(chat)] == ["user", "assistant", "user", "assistant"]
    assert (
        second.user_message.parent_id
        == ChatMessage.objects.get(chat=chat, role="assistant", parent__content="one").pk
    )


def test_a_turn_reads_the_chats_tree_only_when_the_stored_leaf_has_moved_on(
    user, chat, answered, django_capture_on_commit_callbacks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def post(text):
        # The turn's own statements (its answer runs afterwards, outside the capture).
        with (
            django_capture_on_commit_callbacks(execute=False) as callbacks,
            CaptureQueriesContext(connection) as queries,
        ):
            turn = messaging.chat_message_post(user, chat=chat, content=text)
        for callback in callbacks:
            callback()
        chat.refresh_from_db()
        walks = [
            q["sql"]
            for q in queries.captured_queries
            if '"parent_id" AS "parent_id" FROM "chats_chatmessage"' in q["sql"]
            and 'ORDER BY "chats_chatmessage"."created_at"' in q["sql"]
        ]
        return turn, walks

    first = answered(user, chat, "one")
    chat.refresh_from_db()

    # The stored end of the branch is the last answer, still a leaf: no walk of the tree.
    second, walks = post("two")
    assert second.user_message.parent_id == first.assistant_message.pk
    assert not walks

    # Stored: an earlier message with answers below it. The branch goes on to its newest leaf.
    chat.context = {**chat.context, chat_selectors.ACTIVE_LEAF_KEY: str(first.user_message.pk)}
    chat.save(update_fields=["context"])
    third, walks = post("three")
    assert third.user_message.parent_id == second.assistant_message.pk
    assert walks


@pytest.mark.parametrize(
    ("content", "details"),
    [
        ("", {"content": ["Write a message first."]}),
        ("   \n", {"content": ["Write a message first."]}),
        (
            "x" * (messaging.MAX_CONTENT_CHARS + 1),
            {"content": ["Messages are limited to 20000 characters (this one has 20001)."]},
        ),
    ],
)
def test_bad_content_is_refused_before_anything_is_written(user, chat, content, details):
    with pytest.raises(ValidationFailed) as caught:
        messaging.chat_message_post(user, chat=chat, content=content)

    assert caught.value.details == details
    assert ChatMessage.objects.count() == 0
    assert Run.objects.count() == 0


def test_an_archived_chat_refuses_messages(user, chat):
    chat = messaging.chat_update(user, chat=chat, status="archived")

    with pytest.raises(Conflict, match="archived"):
        messaging.chat_message_post(user, chat=chat, content="Hello")

    assert ChatMessage.objects.count() == 0


def test_a_chat_with_an_answer_in_progress_refuses_another(user, chat):
    first = messaging.chat_message_post(user, chat=chat, content="one")

    with pytest.raises(Conflict) as caught:
        messaging.chat_message_post(user, chat=chat, content="two")

    assert caught.value.details == {"run_id": str(first.run.pk)}
    assert ChatMessage.objects.count() == 2


def test_too_many_runs_at_once_is_rate_limited(user, chat, settings):
    settings.MAX_CONCURRENT_RUNS_PER_USER = 2
    RunFactory.create_batch(2, user=user, status=Run.Status.RUNNING)

    with pytest.raises(RateLimited) as caught:
        messaging.chat_message_post(user, chat=chat, content="Hello")

    assert caught.value.retry_after == 5
    assert ChatMessage.objects.count() == 0


def test_other_users_runs_do_not_count_against_the_limit(user, other_user, chat, settings):
    settings.MAX_CONCURRENT_RUNS_PER_USER = 1
    RunFactory(user=other_user, status=Run.Status.RUNNING)

    turn = messaging.chat_message_post(user, chat=chat, content="Hello")

    assert turn.run.status == Run.Status.PENDING


def test_too_many_messages_a_minute_is_rate_limited(user, other_user, chat, answered, settings):
    settings.CHAT_MESSAGES_PER_MINUTE = 2
    answered(user, chat, "one")
    answered(user, chat, "two")
    bob_version = agent_version(demo_model(), agent_type="dialog")
    InstallFactory(user=other_user, agent=bob_version.agent)
    bob_chat = messaging.chat_create(other_user, agent_id=bob_version.agent_id)

    with pytest.raises(RateLimited) as caught:
        messaging.chat_message_post(user, chat=chat, content="three")
    bobs = messaging.chat_message_post(other_user, chat=bob_chat, content="one")

    assert 1 <= caught.value.retry_after <= 60
    assert caught.value.details["limit"] == 2
    assert ChatMessage.objects.filter(chat=chat).count() == 4
    assert bobs.run.user_id == other_user.pk


def test_a_message_cannot_follow_another_user_message(user, chat, answered):
    first = answered(user, chat, "one")

    with pytest.raises(ValidationFailed) as caught:
        messaging.chat_message_post(user, chat=chat, content="two", parent_id=first.user_message.pk)

    assert caught.value.details == {
        "parent_id": ["A message follows an answer, not another message."]
    }


def test_a_parent_from_another_chat_is_not_found(user, version, chat, answered):
    elsewhere = messaging.chat_create(user, agent_id=version.agent_id)
    other = answered(user, elsewhere, "one")

    with pytest.raises(NotFound):
        messaging.chat_message_post(
            user, chat=chat, content="two", parent_id=other.assistant_message.pk
        )


def test_replying_to_an_earlier_answer_starts_a_branch(user, chat, answered):
    first = answered(user, chat, "one")
    answered(user, chat, "two")

    answered(user, chat, "two again", parent_id=str(first.assistant_message.pk))

    assert [c for _, c in path_of(chat)][::2] == ["one", "two again"]


# --- regenerate, edit, branches ---------------------------------------------------------------


def test_regenerate_answers_the_same_message_again_beside_the_first_answer(
    user, chat, answered, django_capture_on_commit_callbacks
):
    first = answered(user, chat, "Hello")

    with django_capture_on_commit_callbacks(execute=True):
        again = messaging.chat_regenerate(user, chat=chat, message_id=first.assistant_message.pk)
    chat.refresh_from_db()
    page = chat_selectors.branch_page(chat)

    assert again.user_message.pk == first.user_message.pk
    assert again.run.user_message_id == first.user_message.pk
    assert again.assistant_message.parent_id == first.user_message.pk
    assert [m.pk for m in page.messages] == [first.user_message.pk, again.assistant_message.pk]
    assert page.sibling_info(page.messages[1]) == {
        "index": 2,
        "count": 2,
        "ids": [str(first.assistant_message.pk), str(again.assistant_message.pk)],
    }
    assert chat.message_count == 3


def test_only_answers_can_be_regenerated(user, chat, answered):
    first = answered(user, chat, "Hello")

    with pytest.raises(ValidationFailed):
        messaging.chat_regenerate(user, chat=chat, message_id=first.user_message.pk)


def test_editing_a_message_adds_a_sibling_and_switching_back_restores_the_old_branch(
    user, chat, answered, django_capture_on_commit_callbacks
):
    first = answered(user, chat, "Hello")
    answered(user, chat, "Follow-up")

    with django_capture_on_commit_callbacks(execute=True):
        edited = messaging.chat_edit_message(
            user, chat=chat, message_id=first.user_message.pk, content="Bonjour"
        )
    after_edit = [c for _, c in path_of(chat)]
    leaf = messaging.chat_branch_select(user, chat=chat, message_id=first.user_message.pk)
    after_switch = [c for _, c in path_of(chat)]

    assert edited.user_message.parent_id is None
    assert edited.user_message.pk != first.user_message.pk
    assert after_edit[0] == "Bonjour"
    assert len(after_edit) == 2
    assert after_switch[0::2] == ["Hello", "Follow-up"]
    assert leaf == ChatMessage.objects.get(parent__content="Follow-up").pk


def test_only_user_messages_can_be_edited(user, chat, answered):
    first = answered(user, chat, "Hello")

    with pytest.raises(ValidationFailed) as caught:
        messaging.chat_edit_message(
            user, chat=chat, message_id=first.assistant_message.pk, content="x"
        )

    assert caught.value.details == {"message_id": ["Only your own messages can be edited."]}


def test_branch_page_paginates_the_active_branch_with_before_id(user, chat, answered):
    for text in ["one", "two", "three"]:
        answered(user, chat, text)
    chat.refresh_from_db()

    newest = chat_selectors.branch_page(chat, limit=4)
    older = chat_selectors.branch_page(chat, before_id=newest.messages[0].pk, limit=4)

    assert [m.content for m in newest.messages][::2] == ["two", "three"]
    assert newest.has_more is True
    assert newest.total == 6
    assert [m.content for m in older.messages] == [
        "one",
        ChatMessage.objects.get(parent__content="one").content,
    ]
    assert older.has_more is False


def test_before_id_off_the_active_branch_is_refused(user, chat, answered):
    first = answered(user, chat, "Hello")
    messaging.chat_regenerate(user, chat=chat, message_id=first.assistant_message.pk)
    chat.refresh_from_db()

    with pytest.raises(ValidationFailed):
        chat_selectors.branch_page(chat, before_id=first.assistant_message.pk)


# --- upgrade, update, delete --------------------------------------------------------------------


def _release(version: AgentVersion, number: str) -> AgentVersion:
    agent = version.agent
    AgentVersion.objects.filter(pk=version.pk).update(is_current=False)
    newer = AgentVersionFactory(
        agent=agent,
        version=number,
        config=version.config,
        status=AgentVersion.Status.APPROVED,
        is_current=True,
    )
    agent.current_version = newer
    agent.save(update_fields=["current_version"])
    return newer


def test_upgrading_pins_the_latest_version_and_earlier_answers_keep_theirs(
    user, chat, version, answered
):
    first = answered(user, chat, "Hello")
    newer = _release(version, "2.0.0")

    upgraded = messaging.chat_upgrade_version(user, chat=chat)
    second = answered(user, upgraded, "Again")

    assert upgraded.agent_version_id == newer.pk
    assert ChatMessage.objects.get(pk=first.assistant_message.pk).agent_version_id == version.pk
    assert ChatMessage.objects.get(pk=second.assistant_message.pk).agent_version_id == newer.pk
    assert Run.objects.get(pk=second.run.pk).agent_version_id == newer.pk
    with pytest.raises(Conflict, match="already uses the latest"):
        messaging.chat_upgrade_version(user, chat=upgraded)


def test_a_new_version_does_not_move_existing_chats(user, chat, version):
    _release(version, "2.0.0")

    chat.refresh_from_db()

    assert chat.agent_version_id == version.pk


def test_renaming_to_nothing_is_refused(user, chat):
    with pytest.raises(ValidationFailed) as caught:
        messaging.chat_update(user, chat=chat, title="   ")

    assert caught.value.details == {"title": ["Enter a title."]}


def test_status_deleted_is_not_an_update(user, chat):
    with pytest.raises(ValidationFailed):
        messaging.chat_update(user, chat=chat, status="deleted")


def test_deleting_hides_the_chat_and_stops_its_answer(user, chat):
    turn = messaging.chat_message_post(user, chat=chat, content="Hello")

    messaging.chat_delete(user, chat=chat)

    assert Chat.objects.get(pk=chat.pk).status == Chat.Status.DELETED
    assert Run.objects.get(pk=turn.run.pk).status == Run.Status.CANCELLED
    assert list(chat_selectors.chats_for(user)) == []
    with pytest.raises(NotFound):
        chat_selectors.chat_for(user, chat.pk)


def test_another_users_chat_is_not_found(other_user, chat):
    with pytest.raises(NotFound):
        chat_selectors.chat_for(other_user, chat.pk)
    with pytest.raises(NotFound):
        messaging.chat_update(other_user, chat=chat, title="mine now")
    with pytest.raises(NotFound):
        messaging.chat_delete(other_user, chat=chat)


def test_chats_for_searches_titles_and_agent_names_and_filters_status(user, version, other_user):
    agent_name = version.agent.name
    trip = messaging.chat_create(user, agent_id=version.agent_id, title="Kyoto trip")
    taxes = messaging.chat_create(user, agent_id=version.agent_id, title="Taxes")
    messaging.chat_update(user, chat=taxes, status="archived")
    bob_agent = agent_version(demo_model()).agent
    InstallFactory(user=other_user, agent=bob_agent)
    messaging.chat_create(other_user, agent_id=bob_agent.pk, title="Kyoto too")

    assert list(chat_selectors.chats_for(user, q="kyoto")) == [trip]
    assert set(chat_selectors.chats_for(user, q=agent_name)) == {trip, taxes}
    assert list(chat_selectors.chats_for(user, status="archived")) == [taxes]


# --- export ---------------------------------------------------------------------------------------


def test_markdown_export_marks_each_answer_with_its_version(user, chat, version, answered):
    answered(user, chat, "Hello")
    newer = _release(version, "2.0.0")
    messaging.chat_upgrade_version(user, chat=chat)
    chat.refresh_from_db()
    answered(user, chat, "Again")
    chat.refresh_from_db()

    export = messaging.chat_export(user, chat=chat, fmt="md")
    text = export.body.decode()

    assert export.content_type == "text/markdown; charset=utf-8"
    assert export.filename == f"hello-{str(chat.pk)[:8]}.md"
    assert text.startswith("# Hello\n")
    assert text.count(f"### {version.agent.name} · version 1.0.0 · ") == 1
    assert text.count(f"### {version.agent.name} · version {newer.version} · ") == 1
    assert text.count("### You · ") == 2
    assert "\nAgain\n" in text


def test_json_export_lists_the_branch_with_versions(user, chat, answered):
    first = answered(user, chat, "Hello")

    export = messaging.chat_export(user, chat=chat, fmt="json")
    document = json.loads(export.body)

    assert export.content_type == "application/json"
    assert document["format"] == "agentstore.chat/1"
    assert document["chat"]["id"] == str(chat.pk)
    assert [(m["role"], m["content"][:5]) for m in document["messages"]] == [
        ("user", "Hello"),
        ("assistant", "I am "),
    ]
    assert document["messages"][0]["agent_version"] is None
    assert document["messages"][1]["agent_version"] == {
        "id": str(chat.agent_version_id),
        "version": "1.0.0",
    }
    assert document["messages"][1]["parent_id"] == str(first.user_message.pk)
    assert document["messages"][1]["metadata"]["usage"]["total_tokens"] > 0


def test_an_unknown_export_format_is_refused(user, chat):
    with pytest.raises(ValidationFailed):
        messaging.chat_export(user, chat=chat, fmt="pdf")


def test_a_turn_stores_its_run_and_messages_in_two_inserts(user, chat):
    """The ids are chosen up front, so the run, the user message and the placeholder are
    two INSERTs; the foreign keys between them hold once the transaction commits."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        turn = messaging.chat_message_post(user, chat=chat, content="Hello")

    inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    assert sum('"chats_run"' in sql for sql in inserts) == 1
    assert sum('"chats_chatmessage"' in sql for sql in inserts) == 1
    connection.check_constraints()  # what the commit checks (the test never commits)
    run = Run.objects.get(pk=turn.run.pk)
    assert (run.user_message_id, run.assistant_message_id) == (
        turn.user_message.pk,
        turn.assistant_message.pk,
    )
    assert ChatMessage.objects.get(pk=turn.assistant_message.pk).run_id == run.pk
    assert turn.user_message.created_at <= turn.assistant_message.created_at


def test_the_chat_row_for_a_turn_is_the_users_own_and_not_deleted(user, other_user, chat):
    assert chat_selectors.chat_row_for(user, chat.pk).pk == chat.pk
    for who, chat_id in ((other_user, chat.pk), (user, "not-a-uuid"), (user, uuid.uuid4())):
        with pytest.raises(NotFound):
            chat_selectors.chat_row_for(who, chat_id)
    messaging.chat_delete(user, chat=chat)
    with pytest.raises(NotFound):
        chat_selectors.chat_row_for(user, chat.pk)
