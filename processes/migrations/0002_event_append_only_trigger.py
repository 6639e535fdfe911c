"""On PostgreSQL, refuse UPDATE and DELETE of process events at the database level."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION flowdesk_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'processes_processevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS processes_processevent_append_only ON processes_processevent;
CREATE TRIGGER processes_processevent_append_only
    BEFORE UPDATE OR DELETE ON processes_processevent
    FOR EACH ROW EXECUTE FUNCTION flowdesk_events_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS processes_processevent_append_only ON processes_processevent;
DROP FUNCTION IF EXISTS flowdesk_events_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("processes", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
