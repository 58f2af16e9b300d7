"""Fewer round trips to PostgreSQL on the hot paths (psycopg's pipeline mode).

A chat turn is a dozen short statements. Alone each takes a fraction of a millisecond, but
under load every round trip is two wake-ups (the server's backend, then the waiting thread,
which also needs the GIL back): measured at 200 streaming chats on two cores, the turn's
statements took 3× their idle time, almost all of it waiting (docs/benchmarks.md).

:func:`pipelined` sends statements without waiting for each answer: the server runs them in
order, and the thread waits once, when it reads rows (or at the end of the block).
:func:`fetch_all` reads several querysets in one such wait. Elsewhere than PostgreSQL both
run the statements one by one, with the same results.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet


@contextmanager
def pipelined(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Statements inside go out without waiting for their answers until rows are read.

    For code that does not read an UPDATE's or DELETE's row count (unknown, -1, inside),
    and that can take an error at the next read instead of at the statement that caused
    it (the transaction fails either way). Nests: an inner block joins the outer one."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield


def fetch_all(*querysets: QuerySet, using: str = DEFAULT_DB_ALIAS) -> list[list[tuple]]:
    """The rows of each queryset (``values_list()`` ones: tuples, converted as the ORM
    would), all sent before any is read: one round trip on PostgreSQL."""
    connection = connections[using]
    compiled: list[tuple[Any, str, Any] | None] = []
    for qs in querysets:
        compiler = qs.query.get_compiler(using=using)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:  # e.g. pk__in=[]: nothing to ask
            compiled.append(None)
        else:
            compiled.append((compiler, sql, params))
    results: list[list[tuple]] = []
    with pipelined(using):
        cursors = [connection.cursor() if item else None for item in compiled]
        try:
            for cursor, item in zip(cursors, compiled, strict=True):
                if cursor is not None and item is not None:
                    cursor.execute(item[1], item[2])
            for cursor, item in zip(cursors, compiled, strict=True):
                if cursor is None or item is None:
                    results.append([])
                    continue
                compiler = item[0]
                rows: list[Any] = cursor.fetchall()
                if compiler.has_extra_select:  # ordering columns beyond the selected ones
                    rows = [row[: compiler.col_count] for row in rows]
                results.append([tuple(row) for row in compiler.results_iter([rows])])
        finally:
            for cursor in cursors:
                if cursor is not None:
                    cursor.close()
    return results


def fetch_scalars(*querysets: QuerySet, using: str = DEFAULT_DB_ALIAS) -> list[Any]:
    """The first column of the first row of each queryset (``None`` without a row), read
    in one statement: ``SELECT (q1), (q2), …``. For independent checks that may share a
    snapshot; each queryset selects one column (``values_list("x")``)."""
    connection = connections[using]
    parts: list[str] = []
    params: list[Any] = []
    compilers: list[Any] = []
    for qs in querysets:
        if not qs.query.is_sliced:
            qs = qs[:1]
        compiler = qs.query.get_compiler(using=using)
        try:
            sql, qs_params = compiler.as_sql()
        except EmptyResultSet:
            parts.append("NULL")
            compilers.append(None)
            continue
        parts.append(f"({sql})")
        params.extend(qs_params)
        compilers.append(compiler)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    values: list[Any] = []
    for compiler, value in zip(compilers, row, strict=True):
        if compiler is None or value is None:
            values.append(None)
            continue
        fields = [s[0] for s in compiler.select[: compiler.col_count]]
        converters = compiler.get_converters(fields[:1])
        converted = compiler.apply_converters([[value]], converters) if converters else [[value]]
        values.append(next(iter(converted))[0])
    return values
