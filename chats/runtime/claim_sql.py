"""Claim a run and load everything its first model call needs in one statement (PostgreSQL).

Through the ORM a claim is a conditional ``UPDATE`` and then a ``SELECT`` of the run with
its agent, version, user and chat; preparing the run then reads the LLM model and the
user's own key for that provider: four statements, ~3.5 ms of query compilation and row
building on the way to every run's first token (``bench/run_overhead.py``). Here it is
one statement whose SQL is built once per process::

    WITH claimed AS (UPDATE run SET status = 'running', attempt = attempt + 1, …
                     WHERE id = %s AND status = 'pending' RETURNING *)
    SELECT set_config('synchronous_commit', 'off', true),
           claimed.…, agent.…, version.…, user.…, chat.…, model.…, key.…
      FROM claimed JOIN agent … JOIN version … JOIN user … LEFT JOIN chat …
      LEFT JOIN llm model ON its id = the version's ``config.model.llm_model_id``
      LEFT JOIN the user's key for that model's provider type

prepared once per connection (planning the join costs twice what running it does). Its
commit does not wait for the WAL flush (``set_config(…, is_local => true)`` lasts until the
end of the statement's own transaction, so it never leaks to the pooled connection's next
borrower), like the rest of a run's hot path (``execute.relaxed_commits``): a database
crash may lose the claim, and the run is then still pending — delivered again, or swept.
The rows become model instances the way the ORM builds them (the fields' and the
backend's converters, then ``Model.from_db``), so decrypted keys, JSON and dates look
exactly as they would. The run comes back with its relations cached and the model and
key attached (:func:`preloaded_llm_model`, :func:`preloaded_provider_key`), which
``builder.prepare`` and the key resolution use instead of querying again; they check the
model is the one the normalised configuration names and fall back to a query otherwise.

Only the first claim of a pending run takes this path; reclaims after a lost worker, and
other databases (SQLite has no ``UPDATE`` in a ``WITH``), use the ORM (``execute``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.db import connection


@dataclass(frozen=True)
class _Part:
    model: type
    alias: str
    attnames: tuple[str, ...]
    fields: tuple[Any, ...]
    # Per field: (column expression, its converters) — what the ORM's compiler applies.
    converters: tuple[tuple[Any, tuple[Any, ...]], ...]


@dataclass(frozen=True)
class _Statement:
    sql: str
    parts: tuple[_Part, ...]


_lock = threading.Lock()
_statements: dict[str, _Statement] = {}


def _part(model: type, alias: str, deferred: tuple[str, ...] = ()) -> _Part:
    fields = tuple(f for f in model._meta.concrete_fields if f.name not in deferred)
    converters = []
    for field in fields:
        col = field.get_col(alias)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        converters.append((col, tuple(found)))
    return _Part(model, alias, tuple(f.attname for f in fields), fields, tuple(converters))


def _columns(part: _Part) -> list[str]:
    quote = connection.ops.quote_name
    return [f"{part.alias}.{quote(field.column)}" for field in part.fields]


def _statement() -> _Statement:
    with _lock:
        found = _statements.get(connection.alias)
        if found is not None:
            return found
        from accounts.models import User
        from agents.models import Agent, AgentVersion
        from chats.models import Chat, Run
        from chats.runtime.builder import RUN_DEFERRED
        from integrations.models import LLMModel, UserProviderKey

        def deferred(prefix: str) -> tuple[str, ...]:
            return tuple(
                name.split("__", 1)[1] for name in RUN_DEFERRED if name.startswith(prefix + "__")
            )

        parts = (
            _part(Run, "r"),
            _part(Agent, "a", deferred("agent")),
            _part(AgentVersion, "v", deferred("agent_version")),
            _part(User, "u"),
            _part(Chat, "c"),
            _part(LLMModel, "m"),
            _part(UserProviderKey, "k"),
        )
        quote = connection.ops.quote_name

        def table(model: type) -> str:
            return quote(model._meta.db_table)

        def col(model: type, name: str) -> str:
            return quote(model._meta.get_field(name).column)

        select = ", ".join(column for part in parts for column in _columns(part))
        sql = (
            f"WITH r AS (UPDATE {table(Run)} SET "  # noqa: S608 - our own identifiers
            f"{col(Run, 'status')} = %s, {col(Run, 'attempt')} = {col(Run, 'attempt')} + 1, "
            f"{col(Run, 'started_at')} = COALESCE({col(Run, 'started_at')}, %s), "
            f"{col(Run, 'heartbeat_at')} = %s "
            f"WHERE {col(Run, 'id')} = %s AND {col(Run, 'status')} = %s RETURNING *) "
            f"SELECT set_config('synchronous_commit', 'off', true), {select} FROM r "
            f"JOIN {table(Agent)} a ON a.{col(Agent, 'id')} = r.{col(Run, 'agent')} "
            f"JOIN {table(AgentVersion)} v "
            f"ON v.{col(AgentVersion, 'id')} = r.{col(Run, 'agent_version')} "
            f"JOIN {table(User)} u ON u.{col(User, 'id')} = r.{col(Run, 'user')} "
            f"LEFT JOIN {table(Chat)} c ON c.{col(Chat, 'id')} = r.{col(Run, 'chat')} "
            f"LEFT JOIN {table(LLMModel)} m ON m.{col(LLMModel, 'id')}::text "
            f"= v.{col(AgentVersion, 'config')} #>> '{{model,llm_model_id}}' "
            f"LEFT JOIN {table(UserProviderKey)} k "
            f"ON k.{col(UserProviderKey, 'user')} = r.{col(Run, 'user')} "
            f"AND k.{col(UserProviderKey, 'provider_type')} = m.{col(LLMModel, 'provider_type')}"
        )
        found = _Statement(sql, parts)
        _statements[connection.alias] = found
        return found


def _instance(part: _Part, values: list[Any]) -> Any:
    converted = []
    for (col, converters), value in zip(part.converters, values, strict=True):
        for converter in converters:
            value = converter(value, col, connection)
        converted.append(value)
    return part.model.from_db(connection.alias, part.attnames, converted)


def claim_and_load(run_id: str, *, now: Any) -> Any:
    """Claim pending run ``run_id`` and return it loaded (relations cached, model and key
    attached), or None when it was not pending. PostgreSQL only (:func:`supported`)."""
    from chats.models import Run

    statement = _statement()
    params = [Run.Status.RUNNING, now, now, run_id, Run.Status.PENDING]
    connection.ensure_connection()
    # A server-side prepared statement: planning this join costs more (~1.4 ms, several
    # under load) than running it (~0.5 ms). Django's cursors bind parameters on the
    # client and Django turns psycopg's prepared statements off (``prepare_threshold``
    # None), so this uses a plain psycopg cursor on the same connection (the same
    # adapters) with preparing allowed for this one statement; psycopg prepares it once per
    # physical connection.
    row = _execute_prepared(connection.connection, statement.sql, params)
    if row is None:
        return None
    instances = []
    offset = 1  # the set_config column
    for part in statement.parts:
        values = list(row[offset : offset + len(part.fields)])
        offset += len(part.fields)
        pk_index = part.attnames.index(part.model._meta.pk.attname)
        instances.append(None if values[pk_index] is None else _instance(part, values))
    run, agent, version, user, chat, llm_model, key = instances
    for name, value in (("agent", agent), ("agent_version", version), ("user", user)):
        Run._meta.get_field(name).set_cached_value(run, value)
    Run._meta.get_field("chat").set_cached_value(run, chat)
    run._preloaded_llm = llm_model
    run._preloaded_key = (llm_model.provider_type, key) if llm_model is not None else None
    return run


def _execute_prepared(conn: Any, sql: str, params: list[Any]) -> Any:
    """Run ``sql`` as a prepared statement on psycopg connection ``conn`` and return its
    first row. Only this statement is prepared: the connection's threshold (None: never
    prepare) is put back at once, and psycopg keeps the statement's name across that."""
    import psycopg

    threshold = conn.prepare_threshold
    conn.prepare_threshold = 2**31 - 1  # nothing is prepared unless asked to
    try:
        with psycopg.Cursor(conn) as cursor:
            try:
                cursor.execute(sql, params, prepare=True)
            except psycopg.errors.InvalidSqlStatementName:
                # The server lost it (a DISCARD on this connection): forget, run unprepared.
                conn._prepared.clear()
                cursor.execute(sql, params, prepare=False)
            return cursor.fetchone()
    finally:
        conn.prepare_threshold = threshold


def supported() -> bool:
    return connection.vendor == "postgresql"


def preloaded_llm_model(run: Any, model_id: Any) -> Any:
    """The LLM model loaded with the run, if it is the one ``model_id`` names."""
    model = getattr(run, "_preloaded_llm", None)
    if model is None or not model_id or str(model.pk) != str(model_id):
        return None
    return model


def preloaded_provider_key(run: Any, provider_type: str) -> Any:
    """The user's own key for ``provider_type`` loaded with the run: the key (or None when
    the user has none), or ``KEY_NOT_LOADED`` when it was not loaded for that provider."""
    from integrations.llm.base import KEY_NOT_LOADED

    loaded = getattr(run, "_preloaded_key", None)
    if loaded is None or loaded[0] != provider_type:
        return KEY_NOT_LOADED
    return loaded[1]
