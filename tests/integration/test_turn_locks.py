"""A chat turn locks only its own chat's row (PostgreSQL): turns in other chats of the same
agent — every chat of a popular agent — go on while one is still open."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from agentstore.errors import Conflict
from chats import messaging
from chats.models import Chat, Run
from chats.tests.runtime_helpers import agent_version, demo_model

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class OpenTurn:
    """A turn in ``chat``, on a thread of its own, whose transaction stays open (holding
    the chat's row) until :meth:`release`."""

    def __init__(self, user, chat, content: str) -> None:
        self.holding, self.released = threading.Event(), threading.Event()
        self.failure: list[BaseException] = []
        self.thread = threading.Thread(target=self._turn, args=(user, chat, content))
        self.thread.start()
        assert self.holding.wait(10)

    def _turn(self, user, chat, content: str) -> None:
        try:
            with transaction.atomic():
                messaging.chat_message_post(user, chat=chat, content=content)
                self.holding.set()
                self.released.wait(10)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure.append(exc)
            self.holding.set()
        finally:
            connection.close()

    def release(self) -> None:
        self.released.set()
        self.thread.join(10)


def test_turns_in_two_chats_of_one_agent_do_not_wait_for_each_other(user, monkeypatch):
    monkeypatch.setattr(messaging, "dispatch", lambda *args, **kwargs: None)
    version = agent_version(demo_model(), agent_type="dialog")
    first, second = (
        Chat.objects.create(user=user, agent=version.agent, agent_version=version) for _ in range(2)
    )
    other = OpenTurn(user, first, "First")  # not committed yet
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")  # waiting would fail, not hang
        turn = messaging.chat_message_post(user, chat=second, content="Second")
    finally:
        other.release()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")

    assert not other.failure
    assert turn.run.chat_id == second.pk
    assert Run.objects.filter(chat__in=[first, second]).count() == 2


def test_the_turn_locks_the_chat_row_only(user, monkeypatch):
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(messaging, "dispatch", lambda *args, **kwargs: None)
    version = agent_version(demo_model(), agent_type="dialog")
    chat = Chat.objects.create(user=user, agent=version.agent, agent_version=version)

    with CaptureQueriesContext(connection) as queries:
        messaging.chat_message_post(user, chat=chat, content="Hello")

    locking = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert locking, "the turn locks its chat"
    assert all(sql.endswith('FOR UPDATE OF "chats_chat"') for sql in locking), locking


def test_a_turn_waiting_for_the_lock_sees_the_answer_started_meanwhile(user, monkeypatch):
    """The lock and the check for an answer in progress travel in one pipeline; the check
    still runs after the lock is granted, so it sees a turn that committed while this one
    waited (a check in the locking statement itself would use the snapshot from before)."""
    monkeypatch.setattr(messaging, "dispatch", lambda *args, **kwargs: None)
    version = agent_version(demo_model(), agent_type="dialog")
    chat = Chat.objects.create(user=user, agent=version.agent, agent_version=version)
    first_row = messaging.chat_selectors.chat_row_for(user, chat.pk)
    second_row = messaging.chat_selectors.chat_row_for(user, chat.pk)
    other = OpenTurn(user, first_row, "First")
    outcome: list[BaseException] = []

    def second_turn() -> None:
        try:
            # Past the checks that need no lock (the first turn has not committed yet).
            messaging._store_turn(
                user,
                chat=second_row,
                parent_id=None,
                text="Second",
                user_message=None,
                action="message",
                request=None,
                via="test",
            )
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            outcome.append(exc)
        finally:
            connection.close()

    waiting = threading.Thread(target=second_turn)
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive(), "the second turn waits for the chat's row"
    other.release()
    waiting.join(10)

    assert not other.failure
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], Conflict), outcome
    assert Run.objects.filter(chat=chat).count() == 1
