"""A Celery worker whose connections come from a pool (``DB_POOL_SIZE``) runs more runs at
once than it has connections: a run holds a connection only while it talks to the
database (``chats.runtime.loop.release_run_connection``)."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from django.db import connection

from chats.models import Run
from chats.tasks import run_execute_task
from chats.tests.runtime_helpers import agent_version, demo_model

pytestmark = pytest.mark.integration

RUNS = 8
POOL_SIZE = 2
# The demo model paces its words; ~20 words 60 ms apart keep each run going ~1.2 s.
TOKEN_DELAY_MS = 60


def _worker_connections(
    conninfo: str, name: str, stop: threading.Event, seen: list[int], writers: list[int]
):
    """Sample how many connections the worker holds (its Django connections carry the
    application name ``name``) and how many event writers (their own small pool on the
    worker loop) are open."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE application_name = %s), "
                "count(*) FILTER (WHERE application_name = 'agentstore-run-events') "
                "FROM pg_stat_activity WHERE datname = current_database()",
                (name,),
            ).fetchone()
            seen.append(row[0])
            writers.append(row[1])
            time.sleep(0.02)


def test_a_pooled_worker_runs_more_runs_at_once_than_it_has_connections(
    celery_worker_factory, user
):
    llm = demo_model(extra_config={"token_delay_ms": TOKEN_DELAY_MS})
    version = agent_version(llm, agent_type="dialog")
    runs = [
        Run.objects.create(
            user=user,
            agent=version.agent,
            agent_version=version,
            source=Run.Source.ONEOFF,
            input={"text": "Tell me about connection pools, please", "context": {}},
        )
        for _ in range(RUNS)
    ]
    name = f"pool-test-{uuid.uuid4().hex[:8]}"
    celery_worker_factory.start(
        pool="threads",
        concurrency=RUNS,
        env={"DB_POOL_SIZE": str(POOL_SIZE), "DB_APPLICATION_NAME": name},
    )
    params = dict(connection.get_connection_params())
    conninfo = psycopg.conninfo.make_conninfo(
        **{k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port"}}
    )
    stop, seen, writers = threading.Event(), [], []
    sampler = threading.Thread(
        target=_worker_connections,
        args=(conninfo, name, stop, seen, writers),
        daemon=True,
    )
    sampler.start()
    try:
        for run in runs:
            run_execute_task.delay(str(run.pk))
        deadline = time.monotonic() + 90
        while Run.objects.filter(pk__in=[r.pk for r in runs], status="completed").count() < RUNS:
            assert time.monotonic() < deadline, "the runs did not complete"
            time.sleep(0.1)
    finally:
        stop.set()
        sampler.join(timeout=5)

    finished = list(Run.objects.filter(pk__in=[r.pk for r in runs]))
    first_end = min(f.finished_at for f in finished)
    # Streaming (first token → end) at the same time as the first run to finish.
    overlapping = sum(1 for r in finished if r.first_token_at < first_end)
    assert all(r.output.strip() for r in finished)
    assert overlapping > POOL_SIZE  # more runs streamed at once than the pool has connections
    assert 1 <= max(seen) <= POOL_SIZE
    # Event batches were written from the worker loop (chats/runtime/event_store.py), not
    # through the runs' own (pooled) connections.
    assert max(writers) >= 1
