"""Store search: the most installed matches straight from the index (see agents/search.py).

A search takes its full-text and name candidates in popularity order. Walking the
``(status, -install_count)`` index and checking each agent's document costs one heap
visit per agent walked: thousands for a word that one agent in thirty has. Instead:

* ``agentstore_popularity_tier(installs)``: 0 for no installs, then one tier per power
  of two (1, 2–3, 4–7, …), 21 from 2**20.
* GIN indexes on (tier, document) and (tier, the name's own tsvector), with
  ``btree_gin`` for the integer column. agents/search.py reads the tiers from the top
  down; each tier's matches come from the index, so the rows visited are about the ones
  kept. They replace the single-column indexes ``agent_search_vector`` and
  ``agent_name_tsv``: a multicolumn GIN index serves conditions on any of its columns,
  and every install (a counter update) writes to each of these indexes.
* Fewer statistics on ``agents_agent.name`` (10 instead of the default 100). The
  planner estimates the trigram operators of the typo source (``%``, ``%>``) by applying
  them to every most-common value and histogram bound of the column: with 100 of each
  that took 0.8 ms of every search's planning, for a source that only runs when a
  search finds almost nothing (and is read through the trigram index either way).

On SQLite every operation here is a no-op, as in ``0002_store_search``.
"""

from __future__ import annotations

from django.contrib.postgres.operations import BtreeGinExtension
from django.db import migrations

TIER_THRESHOLDS = ",".join(str(2**power) for power in range(21))

FORWARD_SQL = [
    f"""
    CREATE OR REPLACE FUNCTION agentstore_popularity_tier(installs integer) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT width_bucket(installs, '{{{TIER_THRESHOLDS}}}'::integer[])
    $$;
    """,
    """
    CREATE INDEX IF NOT EXISTS agent_search_popular ON agents_agent
    USING gin (agentstore_popularity_tier(install_count), search_vector);
    """,
    """
    CREATE INDEX IF NOT EXISTS agent_name_popular ON agents_agent
    USING gin (
        agentstore_popularity_tier(install_count),
        to_tsvector('simple'::regconfig, agentstore_search_text(name))
    );
    """,
    "DROP INDEX IF EXISTS agent_search_vector;",
    "DROP INDEX IF EXISTS agent_name_tsv;",
    "ALTER TABLE agents_agent ALTER COLUMN name SET STATISTICS 10;",
    "ANALYZE agents_agent (name);",
]

BACKWARD_SQL = [
    "ALTER TABLE agents_agent ALTER COLUMN name SET STATISTICS -1;",
    "CREATE INDEX IF NOT EXISTS agent_search_vector ON agents_agent USING gin (search_vector);",
    """
    CREATE INDEX IF NOT EXISTS agent_name_tsv ON agents_agent
    USING gin (to_tsvector('simple'::regconfig, agentstore_search_text(name)));
    """,
    "DROP INDEX IF EXISTS agent_name_popular;",
    "DROP INDEX IF EXISTS agent_search_popular;",
    "DROP FUNCTION IF EXISTS agentstore_popularity_tier(integer);",
]


def _run(statements):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [("agents", "0003_store_listing")]

    operations = [
        BtreeGinExtension(),
        migrations.RunPython(_run(FORWARD_SQL), _run(BACKWARD_SQL), elidable=False),
    ]
