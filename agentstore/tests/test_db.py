"""agentstore.db: several reads in one round trip, statements pipelined (SQLite in the first
CI pass, PostgreSQL in the second: the same results either way)."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from agentstore.db import fetch_all, fetch_scalars, pipelined

pytestmark = pytest.mark.django_db(transaction=True)


def test_fetch_scalars_reads_each_first_value_in_one_statement(user, other_user):
    with CaptureQueriesContext(connection) as queries:
        found, missing, counted, followed, nothing = fetch_scalars(
            User.objects.filter(pk=user.pk).values_list("pk"),
            User.objects.filter(pk=uuid.uuid4()).values_list("pk"),
            User.objects.filter(pk__in=[user.pk, other_user.pk])
            .values("is_active")
            .annotate(n=Count("pk"))
            .values_list("n"),
            User.objects.filter(pk=user.pk)
            .annotate(other=Exists(User.objects.exclude(pk=OuterRef("pk"))))
            .values_list("other"),
            User.objects.none(),
        )

    assert len(queries.captured_queries) == 1
    assert found == user.pk
    assert isinstance(found, uuid.UUID)  # converted as the ORM would
    assert missing is None
    assert counted == 2
    assert followed is True
    assert nothing is None


def test_fetch_all_returns_each_querysets_rows(user, other_user):
    users, names, nothing = fetch_all(
        User.objects.filter(pk__in=[user.pk, other_user.pk])
        .order_by("username")
        .values_list("pk", "username"),
        User.objects.filter(pk=other_user.pk).values_list("username"),
        User.objects.filter(pk__in=[]).values_list("pk"),
    )

    expected = sorted(
        [(user.pk, user.username), (other_user.pk, other_user.username)], key=lambda r: r[1]
    )
    assert users == expected
    assert names == [(other_user.username,)]
    assert nothing == []


def test_a_failing_statement_in_a_pipeline_fails_its_transaction_and_nothing_else(user):
    def turn() -> None:
        with transaction.atomic(), pipelined():
            User.objects.filter(pk=user.pk).update(display_name="changed")
            User.objects.create(username=user.username, email="dup@example.com")  # taken name
            list(User.objects.values_list("pk"))  # rows read: everything before is answered

    with pytest.raises(IntegrityError):
        turn()

    user.refresh_from_db()
    assert user.display_name != "changed"  # rolled back with the transaction
    assert User.objects.filter(pk=user.pk).exists()  # the connection goes on
