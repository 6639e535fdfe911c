"""Fill the authority columns for existing rows, and refuse TRUNCATE of the event log too.

- ``DefinitionComponent``: each component name goes to the key that used it first.
- ``ProcessInstance.started_by_user``: the user of the instance's first event.
- ``TaskInstance.participants``: the people its columns name (assignee, claimant, decider).
- PostgreSQL: a ``BEFORE TRUNCATE`` statement trigger beside the row trigger of 0002, and one
  exception to both: the tables' owner purging on purpose (``SET LOCAL flowdesk.purge = 'on'``).
"""

from django.db import migrations

TRUNCATE_TRIGGER = """
CREATE OR REPLACE FUNCTION flowdesk_events_append_only() RETURNS trigger AS $$
BEGIN
    -- The one way out: a purge (retention, a test database's flush) by the tables' owner
    -- that says so with SET LOCAL flowdesk.purge = 'on'. The application runs as a role that
    -- doesn't own the tables (manage.py app_db_role), so it can neither purge nor drop this.
    IF TG_OP IN ('DELETE', 'TRUNCATE')
       AND current_setting('flowdesk.purge', true) = 'on'
       AND pg_has_role(current_user, (
            SELECT tableowner FROM pg_tables
            WHERE schemaname = TG_TABLE_SCHEMA AND tablename = TG_TABLE_NAME), 'MEMBER') THEN
        IF TG_LEVEL = 'ROW' THEN
            RETURN OLD;
        END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'processes_processevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS processes_processevent_no_truncate ON processes_processevent;
CREATE TRIGGER processes_processevent_no_truncate
    BEFORE TRUNCATE ON processes_processevent
    FOR EACH STATEMENT EXECUTE FUNCTION flowdesk_events_append_only();
"""
DROP_TRUNCATE_TRIGGER = """
DROP TRIGGER IF EXISTS processes_processevent_no_truncate ON processes_processevent;
"""


def fill(apps, schema_editor):
    definition = apps.get_model("processes", "ProcessDefinition")
    component = apps.get_model("processes", "DefinitionComponent")
    instance = apps.get_model("processes", "ProcessInstance")
    task = apps.get_model("processes", "TaskInstance")
    event = apps.get_model("processes", "ProcessEvent")

    for row in definition.objects.exclude(component_name="").order_by("created_at", "id"):
        component.objects.get_or_create(component_name=row.component_name, defaults={"key": row.key})

    for process in instance.objects.filter(started_by_user__isnull=True).iterator():
        first = (
            event.objects.filter(process_id=process.pk, seq=1)
            .values_list("actor_user_id", flat=True)
            .first()
        )
        if first is not None:
            instance.objects.filter(pk=process.pk).update(started_by_user_id=first)

    for row in task.objects.filter(type="HUMAN").iterator():
        people = [
            uid for uid in (row.assignee_id, row.claimed_by_id, row.decided_by_id) if uid is not None
        ]
        if people:
            task.objects.filter(pk=row.pk).update(participants=list(dict.fromkeys(people)))


def truncate_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRUNCATE_TRIGGER, params=None)


def drop_truncate_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRUNCATE_TRIGGER, params=None)


class Migration(migrations.Migration):
    dependencies = [("processes", "0005_authority")]
    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.RunPython(truncate_trigger, drop_truncate_trigger),
    ]
