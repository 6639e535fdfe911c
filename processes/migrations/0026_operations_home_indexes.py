"""The operations home's indexes (each figure one query on an index, bench/admin.py): the active
cases with their definition and state, the open human tasks by process, and the failed tasks
oldest first. Built CONCURRENTLY on PostgreSQL (the tables are big and written all the time),
so the migration is not atomic."""

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """AddIndex that doesn't block writes on PostgreSQL; a plain AddIndex elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            extra = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
            schema_editor.add_index(model, self.index, **extra)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            extra = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
            schema_editor.remove_index(model, self.index, **extra)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("processes", "0025_search_by_business_data"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="processinstance",
            index=models.Index(
                condition=models.Q(("state__in", ["running", "failed"])),
                fields=["id", "definition", "state"],
                name="process_active",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="taskinstance",
            index=models.Index(
                condition=models.Q(("state", "scheduled"), ("type", "HUMAN")),
                fields=["process"],
                name="task_open_human_process",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="taskinstance",
            index=models.Index(
                condition=models.Q(("state__in", ["failed", "compensation_failed"])),
                fields=["finished_at", "id"],
                name="task_failed_since",
            ),
        ),
    ]
