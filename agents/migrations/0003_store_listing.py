"""The store listing without a join to the versions (see ``agents.selectors.store_agents``).

* The partial index ``agent_store_listed`` on the store's own filter (published, with a
  current version): counting a category's agents becomes an index-only scan. No
  ``INCLUDE (current_version_id)``: the store query no longer joins the versions, so
  the key column is all a count reads.
* ``agent_store_listed_newest``: the API's "newest" sort is ``published_at DESC NULLS
  LAST``, which the older ``(status, -published_at)`` index (nulls first) cannot serve
  (a category's newest page took 60 ms sorting all its agents; now it walks the index).
  PostgreSQL only: SQLite does not accept ``NULLS LAST`` in an index.
* Triggers that make "the current version is approved" a database rule, on PostgreSQL
  and SQLite alike. The models already refuse a current (``is_current``) version that is
  not approved; these add that ``agents_agent.current_version_id`` may only name an
  approved version of the same agent, and that such a version cannot leave ``approved``
  (or move to another agent) while an agent points at it. Violations raise an
  integrity error. Concurrent writers are serialised by the services
  (``select_for_update`` on the version and the agent).

  On SQLite a later migration that rebuilds ``agents_agent`` drops its triggers;
  ``agents/tests/test_services.py`` checks they exist on every test database.
"""

from __future__ import annotations

from django.db import migrations, models

POSTGRESQL_FORWARD = [
    """
    CREATE OR REPLACE FUNCTION agents_agent_current_version_check() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.current_version_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM agents_agentversion AS v
            WHERE v.id = NEW.current_version_id AND v.agent_id = NEW.id
              AND v.status = 'approved'
        ) THEN
            RAISE EXCEPTION 'current version not approved'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END
    $$;
    """,
    """
    CREATE TRIGGER agents_agent_current_version_insert
    BEFORE INSERT ON agents_agent FOR EACH ROW
    WHEN (NEW.current_version_id IS NOT NULL)
    EXECUTE FUNCTION agents_agent_current_version_check();
    """,
    """
    CREATE TRIGGER agents_agent_current_version_update
    BEFORE UPDATE OF current_version_id ON agents_agent FOR EACH ROW
    WHEN (NEW.current_version_id IS DISTINCT FROM OLD.current_version_id)
    EXECUTE FUNCTION agents_agent_current_version_check();
    """,
    """
    CREATE OR REPLACE FUNCTION agents_agentversion_current_check() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (
            SELECT 1 FROM agents_agent AS a
            WHERE a.current_version_id = NEW.id
              AND (NEW.status <> 'approved' OR a.id <> NEW.agent_id)
        ) THEN
            RAISE EXCEPTION 'current version not approved'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END
    $$;
    """,
    """
    CREATE TRIGGER agents_agentversion_current
    BEFORE UPDATE OF status, agent_id ON agents_agentversion FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status OR NEW.agent_id IS DISTINCT FROM OLD.agent_id)
    EXECUTE FUNCTION agents_agentversion_current_check();
    """,
]

POSTGRESQL_BACKWARD = [
    "DROP TRIGGER IF EXISTS agents_agentversion_current ON agents_agentversion",
    "DROP FUNCTION IF EXISTS agents_agentversion_current_check()",
    "DROP TRIGGER IF EXISTS agents_agent_current_version_update ON agents_agent",
    "DROP TRIGGER IF EXISTS agents_agent_current_version_insert ON agents_agent",
    "DROP FUNCTION IF EXISTS agents_agent_current_version_check()",
]

_SQLITE_AGENT_CHECK = """
    WHEN NEW.current_version_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM agents_agentversion AS v
        WHERE v.id = NEW.current_version_id AND v.agent_id = NEW.id AND v.status = 'approved'
    )
    BEGIN SELECT RAISE(ABORT, 'current version not approved'); END
"""

SQLITE_FORWARD = [
    "CREATE TRIGGER agents_agent_current_version_insert BEFORE INSERT ON agents_agent"
    + _SQLITE_AGENT_CHECK,
    "CREATE TRIGGER agents_agent_current_version_update "
    "BEFORE UPDATE OF current_version_id ON agents_agent" + _SQLITE_AGENT_CHECK,
    """
    CREATE TRIGGER agents_agentversion_current
    BEFORE UPDATE OF status, agent_id ON agents_agentversion
    WHEN EXISTS (
        SELECT 1 FROM agents_agent AS a
        WHERE a.current_version_id = NEW.id
          AND (NEW.status <> 'approved' OR a.id <> NEW.agent_id)
    )
    BEGIN SELECT RAISE(ABORT, 'current version not approved'); END
    """,
]

SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS agents_agentversion_current",
    "DROP TRIGGER IF EXISTS agents_agent_current_version_update",
    "DROP TRIGGER IF EXISTS agents_agent_current_version_insert",
]


def _run(postgresql: list[str], sqlite: list[str]):
    def operation(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        statements = {"postgresql": postgresql, "sqlite": sqlite}.get(vendor, [])
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return operation


NEWEST = models.Index(
    models.OrderBy(models.F("published_at"), descending=True, nulls_last=True),
    condition=models.Q(("current_version__isnull", False), ("status", "published")),
    name="agent_store_listed_newest",
)


def _add_newest_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("agents", "Agent"), NEWEST)


def _remove_newest_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("agents", "Agent"), NEWEST)


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_store_search"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="agent",
            index=models.Index(
                condition=models.Q(("current_version__isnull", False), ("status", "published")),
                fields=["category"],
                name="agent_store_listed",
            ),
        ),
        # SQLite refuses NULLS LAST in an index: the index exists in the state
        # everywhere, in the database on PostgreSQL only.
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="agent", index=NEWEST)],
            database_operations=[
                migrations.RunPython(_add_newest_index, _remove_newest_index, elidable=False)
            ],
        ),
        migrations.RunPython(
            _run(POSTGRESQL_FORWARD, SQLITE_FORWARD),
            _run(POSTGRESQL_BACKWARD, SQLITE_BACKWARD),
            elidable=False,
        ),
    ]
