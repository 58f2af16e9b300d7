"""Storing a run's event batches from the Celery worker's event loop, without a thread hop.

The emitter stores every batch before publishing it (STYLE §3). Through the ORM that is a
``sync_to_async`` round trip to the run's thread per batch — two thread hand-offs and
Django's insert compiler, ~1 ms of CPU — and a run flushes up to 25 times a second. On
PostgreSQL in Celery mode the worker loop instead keeps a few asynchronous psycopg
connections of its own and writes a batch with one prepared statement (``unnest`` of the
batch's arrays), ~0.15 ms of CPU, on the loop itself.

The runs of a loop share the store's connections, and their batches share statements:
while every connection is busy, the batches handed in wait and then go out together, in one
``INSERT`` for all of their runs (a run's own batches stay in order: its emitter waits for
each before it writes the next). Should such a statement fail, each run's rows are tried
on their own, so a run with a bad batch fails alone.

Only where the run row is committed and visible to other connections: Celery mode. The
embedded server loop and inline runs (tests run inside a transaction) keep the ORM path.
Commits are asynchronous (``synchronous_commit = off``), like the rest of the hot path
(``execute.relaxed_commits``); the terminal event is stored by the final, durable
transaction as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import Any

from django.db import connections

from agentstore.aio import settle

logger = logging.getLogger(__name__)

POOL_SIZE = 4
_CONNINFO_KEYS = {
    "dbname",
    "user",
    "password",
    "host",
    "port",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "options",
    "connect_timeout",
    "client_encoding",
    "target_session_attrs",
}

_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEventStore] = (
    weakref.WeakKeyDictionary()
)


def _conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    params = dict(connections["default"].get_connection_params())
    keep = {
        key: value
        for key, value in params.items()
        if key in _CONNINFO_KEYS and isinstance(value, str | int)
    }
    keep.setdefault("application_name", "agentstore-run-events")
    return make_conninfo(**keep)


class AsyncEventStore:
    """A few autocommit connections shared by the runs of one event loop."""

    def __init__(self) -> None:
        from chats.models import RunEvent

        table = connections["default"].ops.quote_name(RunEvent._meta.db_table)
        self.sql = (
            f"INSERT INTO {table} (run_id, seq, type, payload, created_at) "  # noqa: S608 - our table name
            "SELECT u.r, u.s, u.t, u.p::jsonb, now() "
            "FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::text[]) AS u(r, s, t, p)"
        )
        self._pending: list[tuple[str, list[tuple[int, dict[str, Any]]], asyncio.Future]] = []
        self._writers = 0
        self._idle: list[Any] = []
        self._open = 0
        self._available = asyncio.Condition()
        self._conninfo = _conninfo()

    async def _acquire(self) -> Any:
        import psycopg

        async with self._available:
            while not self._idle and self._open >= POOL_SIZE:
                await self._available.wait()
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, prepare_threshold=0
            )
            await conn.execute("SET synchronous_commit TO OFF")
        except BaseException:
            async with self._available:
                self._open -= 1
                self._available.notify()
            raise
        return conn

    async def _release(self, conn: Any, *, broken: bool) -> None:
        async with self._available:
            if broken or conn.closed:
                self._open -= 1
                if not conn.closed:
                    await conn.close()
            else:
                self._idle.append(conn)
            self._available.notify()

    async def store(self, run_id: str, rows: list[tuple[int, dict[str, Any]]]) -> None:
        """Store one batch of ``run_id``'s events; returns once it is written."""
        loop = asyncio.get_running_loop()
        written = loop.create_future()
        self._pending.append((run_id, rows, written))
        if self._writers < POOL_SIZE:
            self._writers += 1
            loop.create_task(self._write_pending())
        await written

    async def _write_pending(self) -> None:
        """Writes whatever batches are waiting, all of them in one statement, until none are."""
        try:
            while self._pending:
                batches, self._pending = self._pending, []
                try:
                    await self._insert(batches)
                except Exception as exc:  # noqa: BLE001 - handed to the runs' emitters
                    if len(batches) == 1:
                        _settle(batches, exc)
                        continue
                    for batch in batches:  # one run's bad rows must not fail the others
                        try:
                            await self._insert([batch])
                        except Exception as one:  # noqa: BLE001
                            _settle([batch], one)
                        else:
                            _settle([batch], None)
                else:
                    _settle(batches, None)
        finally:
            self._writers -= 1

    async def _insert(
        self, batches: list[tuple[str, list[tuple[int, dict[str, Any]]], asyncio.Future]]
    ) -> None:
        run_ids, seqs, types, payloads = [], [], [], []
        for run_id, rows, _written in batches:
            for seq, payload in rows:
                run_ids.append(run_id)
                seqs.append(seq)
                types.append(str(payload.get("type", ""))[:40])
                payloads.append(json.dumps(payload, ensure_ascii=False))
        for attempt in (1, 2):
            conn = await self._acquire()
            try:
                await conn.execute(self.sql, (run_ids, seqs, types, payloads))
            except Exception as exc:
                import psycopg

                await self._release(conn, broken=True)
                # A connection the server closed while idle: one fresh try.
                if attempt == 1 and isinstance(exc, psycopg.OperationalError):
                    continue
                raise
            await self._release(conn, broken=False)
            return


def _settle(
    batches: list[tuple[str, list[tuple[int, dict[str, Any]]], asyncio.Future]],
    error: BaseException | None,
) -> None:
    settle((written for _run_id, _rows, written in batches), error)


def store_for(loop: asyncio.AbstractEventLoop, *, mode: str) -> AsyncEventStore | None:
    """The loop's store when runs on it may write events directly (see the module doc).

    ``mode`` is the execution mode as seen from the run's own thread: on the loop's
    thread Celery's current task is not visible, so it must not be asked there."""
    if mode != "celery" or connections["default"].vendor != "postgresql":
        return None
    store = _stores.get(loop)
    if store is None:
        store = _stores[loop] = AsyncEventStore()
    return store
