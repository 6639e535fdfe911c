"""The dashboard's read model (task executions projected from the event log) and two partial
indexes on open human tasks: the inbox's age sort within a role and the overdue filter.

The task table is big and written all the time: on PostgreSQL its indexes are built
CONCURRENTLY (no lock on writers), which needs a non-atomic migration.
"""

import django.utils.timezone
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """AddIndex that doesn't block writes on PostgreSQL; a plain AddIndex elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.add_index(model, self.index, concurrently=True)
            else:
                schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.remove_index(model, self.index, concurrently=True)
            else:
                schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("processes", "0003_permissions"),
    ]

    operations = [
        migrations.CreateModel(
            name="ProjectionState",
            fields=[
                ("name", models.CharField(max_length=100, primary_key=True, serialize=False)),
                (
                    "last_event_id",
                    models.BigIntegerField(
                        default=0,
                        help_text="Every event up to this id is projected, except the missing ones.",
                    ),
                ),
                (
                    "missing",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="[id, xmax]: ids up to last_event_id not committed when read (PostgreSQL), and the snapshot xmax then; dropped once every transaction before xmax has ended.",
                    ),
                ),
                (
                    "time_zone",
                    models.CharField(
                        blank=True,
                        default="",
                        help_text="The heat map's hours are in this zone.",
                        max_length=100,
                    ),
                ),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.CreateModel(
            name="TaskExecution",
            fields=[
                (
                    "event_id",
                    models.BigIntegerField(
                        help_text="The task_completed event.", primary_key=True, serialize=False
                    ),
                ),
                ("process_id", models.UUIDField()),
                ("process_created_at", models.DateTimeField()),
                ("definition_key", models.CharField(max_length=100)),
                ("definition_version", models.PositiveIntegerField()),
                ("task_name", models.CharField(max_length=100)),
                (
                    "task_type",
                    models.CharField(
                        choices=[("SERVICE", "Service"), ("HUMAN", "Human")], max_length=10
                    ),
                ),
                ("scheduled_at", models.DateTimeField()),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("completed_at", models.DateTimeField()),
                ("lead_seconds", models.FloatField(help_text="scheduled -> completed")),
                (
                    "run_seconds",
                    models.FloatField(blank=True, help_text="started -> completed", null=True),
                ),
                ("heat_days", models.IntegerField(blank=True, null=True)),
                ("heat_first_hour", models.SmallIntegerField(blank=True, null=True)),
                ("heat_first_seconds", models.FloatField(blank=True, null=True)),
                ("heat_last_hour", models.SmallIntegerField(blank=True, null=True)),
                ("heat_last_seconds", models.FloatField(blank=True, null=True)),
                ("heat_full_hour", models.SmallIntegerField(blank=True, null=True)),
                ("heat_full_hours", models.IntegerField(blank=True, null=True)),
            ],
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="taskinstance",
            index=models.Index(
                condition=models.Q(("state", "scheduled"), ("type", "HUMAN")),
                fields=["candidate_role", "scheduled_at"],
                name="task_open_human_role_age",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="taskinstance",
            index=models.Index(
                condition=models.Q(("state", "scheduled"), ("type", "HUMAN")),
                fields=["due_at"],
                name="task_open_human_due",
            ),
        ),
        migrations.AddIndex(
            model_name="taskexecution",
            index=models.Index(
                fields=["definition_key", "process_created_at"], name="execution_def_created"
            ),
        ),
    ]
