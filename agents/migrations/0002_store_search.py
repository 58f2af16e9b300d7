"""Store search on PostgreSQL (hand-written; see agents/search.py).

* ``pg_trgm`` and a GIN trigram index on the agent name (typo-tolerant name matching).
* A ``search_vector`` tsvector column on ``agents_agent`` that the ORM does not map:
  triggers keep it current (name weight A; short description and tag names B;
  description C), so no service has to remember it and ``bulk_create`` is covered too.
  Chinese has no spaces between words, so runs of CJK characters are indexed as
  overlapping bigrams (``agentstore_search_text``); agents/search.py turns queries into
  the same bigrams.
* GIN indexes on that column and on the name's own tsvector, a btree on UPPER(name)
  for exact name matches, and a partial index on approved version ids (the store's
  "current version is approved" join becomes an index-only scan).

On SQLite every operation here is a no-op; agents/search.py falls back to ``icontains``.
"""

from __future__ import annotations

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

# Kana, CJK ideographs and hangul: scripts written without spaces between words.
CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"

FORWARD_SQL = [
    # Chinese, Japanese and Korean runs become overlapping bigrams ("智能客服" → "智能 能客
    # 客服"), everything else passes unchanged. Immutable, so indexes may use it; its high
    # COST keeps the planner from calling it per row when the agent_name_tsv index can
    # answer instead.
    rf"""
    CREATE OR REPLACE FUNCTION agentstore_search_text(value text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE COST 1000 AS $$
    DECLARE
        parts text[];
        run text;
        result text := '';
    BEGIN
        FOR parts IN SELECT regexp_matches(coalesce(value, ''), '([{CJK}]+)|([^{CJK}]+)', 'g')
        LOOP
            IF parts[1] IS NULL THEN
                result := result || parts[2];
            ELSIF char_length(parts[1]) = 1 THEN
                result := result || ' ' || parts[1] || ' ';
            ELSE
                run := parts[1];
                result := result || ' ';
                FOR i IN 1 .. char_length(run) - 1 LOOP
                    result := result || substr(run, i, 2) || ' ';
                END LOOP;
            END IF;
        END LOOP;
        RETURN result;
    END
    $$;
    """,
    r"""
    CREATE OR REPLACE FUNCTION agentstore_agent_document(
        agent_id uuid, name text, short_description text, description text
    ) RETURNS tsvector LANGUAGE sql STABLE AS $$
        SELECT
            setweight(to_tsvector('simple', agentstore_search_text(name)), 'A')
            || setweight(to_tsvector('simple', agentstore_search_text(
                   coalesce(short_description, '') || ' ' || coalesce((
                       SELECT string_agg(t.name, ' ')
                       FROM agents_agent_tags AS at
                       JOIN agents_tag AS t ON t.id = at.tag_id
                       WHERE at.agent_id = $1), ''))), 'B')
            || setweight(to_tsvector('simple', agentstore_search_text(description)), 'C')
    $$;
    """,
    "ALTER TABLE agents_agent ADD COLUMN IF NOT EXISTS search_vector tsvector;",
    r"""
    CREATE OR REPLACE FUNCTION agentstore_agent_search_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        NEW.search_vector := agentstore_agent_document(
            NEW.id, NEW.name, NEW.short_description, NEW.description);
        RETURN NEW;
    END
    $$;
    """,
    # Counter updates (installs, ratings) do not touch these columns, so they stay cheap.
    """
    CREATE TRIGGER agents_agent_search
    BEFORE INSERT OR UPDATE OF name, short_description, description ON agents_agent
    FOR EACH ROW EXECUTE FUNCTION agentstore_agent_search_trigger();
    """,
    r"""
    CREATE OR REPLACE FUNCTION agentstore_agent_tags_search_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        target uuid;
    BEGIN
        IF TG_OP = 'DELETE' THEN target := OLD.agent_id; ELSE target := NEW.agent_id; END IF;
        UPDATE agents_agent AS a
        SET search_vector = agentstore_agent_document(
            a.id, a.name, a.short_description, a.description)
        WHERE a.id = target;
        RETURN NULL;
    END
    $$;
    """,
    """
    CREATE TRIGGER agents_agent_tags_search
    AFTER INSERT OR DELETE ON agents_agent_tags
    FOR EACH ROW EXECUTE FUNCTION agentstore_agent_tags_search_trigger();
    """,
    r"""
    CREATE OR REPLACE FUNCTION agentstore_tag_search_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE agents_agent AS a
        SET search_vector = agentstore_agent_document(
            a.id, a.name, a.short_description, a.description)
        WHERE a.id IN (SELECT at.agent_id FROM agents_agent_tags AS at WHERE at.tag_id = NEW.id);
        RETURN NULL;
    END
    $$;
    """,
    """
    CREATE TRIGGER agents_tag_search
    AFTER UPDATE OF name ON agents_tag
    FOR EACH ROW EXECUTE FUNCTION agentstore_tag_search_trigger();
    """,
    """
    UPDATE agents_agent AS a SET search_vector = agentstore_agent_document(
        a.id, a.name, a.short_description, a.description);
    """,
    "CREATE INDEX IF NOT EXISTS agent_search_vector ON agents_agent USING gin (search_vector);",
    "CREATE INDEX IF NOT EXISTS agent_name_trgm ON agents_agent USING gin (name gin_trgm_ops);",
    # Name-only full-text matches, so agents named after the query are always candidates.
    """
    CREATE INDEX IF NOT EXISTS agent_name_tsv ON agents_agent
    USING gin (to_tsvector('simple'::regconfig, agentstore_search_text(name)));
    """,
    # Exact name matches (Django's iexact: UPPER(name) = UPPER(q)).
    "CREATE INDEX IF NOT EXISTS agent_name_upper ON agents_agent (upper(name));",
    # The store's "current version is approved" join (agents.selectors.store_agents) as an
    # index-only scan: every search candidate passes through it.
    """
    CREATE INDEX IF NOT EXISTS agentversion_approved_id ON agents_agentversion (id)
    WHERE status = 'approved';
    """,
]

BACKWARD_SQL = [
    "DROP INDEX IF EXISTS agentversion_approved_id;",
    "DROP INDEX IF EXISTS agent_name_upper;",
    "DROP INDEX IF EXISTS agent_name_tsv;",
    "DROP INDEX IF EXISTS agent_name_trgm;",
    "DROP INDEX IF EXISTS agent_search_vector;",
    "DROP TRIGGER IF EXISTS agents_tag_search ON agents_tag;",
    "DROP TRIGGER IF EXISTS agents_agent_tags_search ON agents_agent_tags;",
    "DROP TRIGGER IF EXISTS agents_agent_search ON agents_agent;",
    "DROP FUNCTION IF EXISTS agentstore_tag_search_trigger();",
    "DROP FUNCTION IF EXISTS agentstore_agent_tags_search_trigger();",
    "DROP FUNCTION IF EXISTS agentstore_agent_search_trigger();",
    "ALTER TABLE agents_agent DROP COLUMN IF EXISTS search_vector;",
    "DROP FUNCTION IF EXISTS agentstore_agent_document(uuid, text, text, text);",
    "DROP FUNCTION IF EXISTS agentstore_search_text(text);",
]


def _run(statements):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial")]

    operations = [
        TrigramExtension(),
        migrations.RunPython(_run(FORWARD_SQL), _run(BACKWARD_SQL), elidable=False),
    ]
