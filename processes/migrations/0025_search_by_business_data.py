"""Search by business data: what each case is found by (``search_text``: its business key and
its definition's ``search`` variables, case-folded, kept by the engine), and on PostgreSQL a
trigram GIN index on it (pg_trgm) so that a partial match ("e013", "ada") reads the index, not
the table. Elsewhere (SQLite) the same query scans: the plain fallback.

Existing cases get their business key (no definition could declare ``search`` before this);
the index is built CONCURRENTLY (no lock on writers), so the migration is not atomic.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

INDEX = "process_search_trgm"


def backfill(apps, schema_editor):
    table = apps.get_model("processes", "ProcessInstance")._meta.db_table
    schema_editor.execute(
        f"UPDATE {table} SET search_text = lower(business_key) WHERE search_text = ''"
    )


def add_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = apps.get_model("processes", "ProcessInstance")._meta.db_table
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON {table} "
            "USING gin (search_text gin_trgm_ops)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("processes", "0024_task_reassigned_event"),
    ]

    operations = [
        migrations.AddField(
            model_name="processinstance",
            name="search_text",
            field=models.TextField(
                blank=True,
                db_default="",
                default="",
                help_text="What the case is found by (spec.search_text): its business key and "
                "its definition's searchable variables, case-folded. On PostgreSQL a trigram "
                "index (process_search_trgm, made by its migration: not a portable index) "
                "serves partial matches.",
            ),
        ),
        TrigramExtension(),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(add_index, drop_index),
    ]
