"""Open tasks carry their process's definition key (the inbox's process-type filter and counts
read the task table alone), with the one index that answers them without the table."""

from django.db import migrations, models
from django.db.models import Q

COPY_KEYS = """
UPDATE processes_taskinstance SET definition_key = (
    SELECT definition_key FROM processes_processinstance
    WHERE processes_processinstance.id = processes_taskinstance.process_id
)
"""


class Migration(migrations.Migration):
    dependencies = [("processes", "0018_archived_business_keys")]

    operations = [
        migrations.AddField(
            model_name="taskinstance",
            name="definition_key",
            field=models.SlugField(db_index=False, default="", editable=False, max_length=100),
            preserve_default=False,
        ),
        migrations.RunSQL(COPY_KEYS, reverse_sql=migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="taskinstance",
            index=models.Index(
                condition=Q(state="scheduled", type="HUMAN"),
                fields=["candidate_role", "definition_key", "visibility", "assignee", "claimed_by"],
                name="task_open_human_listing",
            ),
        ),
    ]
