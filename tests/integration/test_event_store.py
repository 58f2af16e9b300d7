"""The worker loop's event store (``chats.runtime.event_store``, PostgreSQL): the batches of
the loop's runs share statements while its connections are busy, each run's events stay in
order, and a run's bad batch fails that run alone."""

from __future__ import annotations

import asyncio

import pytest

from chats.models import RunEvent
from chats.runtime import event_store
from chats.tests.runtime_helpers import agent_version, demo_model, oneoff_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def events(start: int, count: int) -> list[tuple[int, dict]]:
    return [
        (seq, {"type": "TEXT_MESSAGE_CONTENT", "delta": f"d{seq}"})
        for seq in range(start, start + count)
    ]


def test_batches_of_many_runs_share_statements_and_stay_in_order(user, monkeypatch):
    version = agent_version(demo_model(), agent_type="dialog")
    runs = [str(oneoff_run(user, version, f"Run {i}").pk) for i in range(12)]
    statements: list[int] = []

    async def scenario() -> None:
        store = event_store.AsyncEventStore()
        insert = store._insert

        async def counting(batches):
            statements.append(len(batches))
            await insert(batches)

        monkeypatch.setattr(store, "_insert", counting)

        async def run(run_id: str) -> None:
            for start in range(1, 41, 4):  # ten batches of four events, one after another
                await store.store(run_id, events(start, 4))

        try:
            await asyncio.gather(*(run(run_id) for run_id in runs))
        finally:
            for conn in store._idle:
                await conn.close()

    asyncio.run(scenario())

    for run_id in runs:
        stored = list(RunEvent.objects.filter(run_id=run_id).order_by("seq"))
        assert [e.seq for e in stored] == list(range(1, 41))
        assert [e.payload["delta"] for e in stored] == [f"d{seq}" for seq in range(1, 41)]
    assert sum(statements) >= 12 * 10  # every batch written (retries of single runs count too)
    assert len(statements) < 12 * 10  # but far fewer statements than batches
    assert max(statements) > 1


def test_a_bad_batch_fails_its_run_alone(user):
    version = agent_version(demo_model(), agent_type="dialog")
    good, bad = (str(oneoff_run(user, version, f"Run {i}").pk) for i in range(2))
    RunEvent.objects.create(run_id=bad, seq=1, type="RUN_STARTED", payload={"type": "RUN_STARTED"})

    async def scenario():
        store = event_store.AsyncEventStore()
        try:
            return await asyncio.gather(
                store.store(good, events(1, 3)),
                store.store(bad, events(1, 3)),  # seq 1 is taken: a unique violation
                return_exceptions=True,
            )
        finally:
            for conn in store._idle:
                await conn.close()

    good_result, bad_result = asyncio.run(scenario())

    assert good_result is None
    assert isinstance(bad_result, Exception)
    assert list(
        RunEvent.objects.filter(run_id=good).values_list("seq", flat=True).order_by("seq")
    ) == [1, 2, 3]
    assert RunEvent.objects.filter(run_id=bad).count() == 1
