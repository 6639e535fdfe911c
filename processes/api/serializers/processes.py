"""Processes: detail, point in time, events, start, batch, migration, cancel."""

from __future__ import annotations

from rest_framework import serializers

from processes.api.serializers.common import BusinessKeyField, OutputSerializer
from processes.models import ProcessState, TaskState, TaskType


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


class TaskSerializer(OutputSerializer):
    id = serializers.IntegerField()
    stage = serializers.CharField()
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=TaskType.choices)
    state = serializers.ChoiceField(choices=TaskState.choices)
    attempts = serializers.IntegerField()
    execution = serializers.IntegerField(help_text="Numbered from 1; a replay or rework adds 1.")
    round = serializers.IntegerField(help_text="The rework round this execution belongs to.")
    role = serializers.CharField(source="candidate_role")
    assignee = serializers.SerializerMethodField()
    claimed_by = serializers.SerializerMethodField()
    task_queue = serializers.CharField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(source="last_error")
    due = serializers.DateTimeField(source="due_at", allow_null=True)
    wake_at = serializers.DateTimeField(
        allow_null=True, help_text="When its timer is due (a TIMER task: when it fires)."
    )
    scheduled_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_assignee(self, task) -> str | None:
        return _username(task.assignee) if task.assignee_id else None

    def get_claimed_by(self, task) -> str | None:
        return _username(task.claimed_by) if task.claimed_by_id else None


class ProcessSerializer(OutputSerializer):
    id = serializers.UUIDField()
    url = serializers.SerializerMethodField()
    definition = serializers.CharField(source="definition_key")
    version = serializers.IntegerField(source="definition.version")
    business_key = serializers.CharField()
    state = serializers.ChoiceField(choices=ProcessState.choices)
    business_status = serializers.CharField()
    current_stage = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, process) -> str:
        return f"/api/processes/{process.pk}/"


TASKS = TaskSerializer(many=True)  # no per-call state (OutputSerializer): one serves every call


class ProcessDetailSerializer(ProcessSerializer):
    """One process with its tasks, given as ``(process, tasks)``: the tasks in spec order with
    their people (``selectors.process_tasks``, or the tasks a start just wrote)."""

    started_by = serializers.CharField()
    parent = serializers.UUIDField(
        source="parent_id", allow_null=True, help_text="The process that started this one."
    )
    parent_task = serializers.SerializerMethodField(
        help_text="The parent's PROCESS task waiting for this one; its children: "
        "`GET /api/processes/?parent={id}`."
    )
    variables = serializers.JSONField()
    tasks = TaskSerializer(many=True)
    given = ("tasks",)

    def to_representation(self, instance):
        process, tasks = instance
        return {**super().to_representation(process), "tasks": TASKS.to_representation(tasks)}

    def get_parent_task(self, process) -> str | None:
        if process.parent_task_id is None:
            return None
        return process.parent_task.name


class ArchiveLocationSerializer(serializers.Serializer):
    file = serializers.CharField(
        source="archive_file", help_text="The archive file (`manage.py archive_processes`)."
    )
    archived_at = serializers.DateTimeField()


class ArchivedProcessSerializer(OutputSerializer):
    """A case retention archived and deleted, whose business key stays taken (``"ever"``)."""

    id = serializers.UUIDField(source="process_id")
    definition = serializers.CharField(source="definition_key")
    version = serializers.IntegerField(source="definition_version")
    business_key = serializers.CharField()
    state = serializers.ChoiceField(choices=ProcessState.choices)
    business_status = serializers.CharField()
    completed_at = serializers.DateTimeField(allow_null=True)
    archived = serializers.SerializerMethodField(help_text="Always true: the row is gone.")
    archive = ArchiveLocationSerializer(source="*")

    def get_archived(self, row) -> bool:
        return True


class TaskRoundSerializer(serializers.Serializer):
    """A finished execution a rework loop ran again, as it was then."""

    task = serializers.CharField(source="task_name")
    round = serializers.IntegerField()
    execution = serializers.IntegerField()
    state = serializers.ChoiceField(choices=TaskState.choices)
    result = serializers.JSONField(allow_null=True)
    decided_by = serializers.SerializerMethodField()
    attempts = serializers.IntegerField()
    scheduled_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_decided_by(self, row) -> str | None:
        return _username(row.decided_by) if row.decided_by_id else None


class ProcessAsOfQuerySerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(
        required=False,
        help_text="ISO 8601 timestamp (a naive one is in the server's time zone).",
    )


class TaskStateAtSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=TaskState.choices)


class ProcessAsOfSerializer(serializers.Serializer):
    """A process as its events say it was at ``as_of`` (rebuilt, not stored)."""

    id = serializers.UUIDField(source="process.pk")
    url = serializers.SerializerMethodField()
    definition = serializers.CharField(source="process.definition_key")
    version = serializers.IntegerField(source="process.definition.version")
    business_key = serializers.CharField(source="process.business_key")
    as_of = serializers.DateTimeField(source="point.as_of")
    last_seq = serializers.IntegerField(
        source="point.last_seq", help_text="The last event folded into this state."
    )
    last_event_at = serializers.DateTimeField(source="point.last_event_at")
    state = serializers.ChoiceField(choices=ProcessState.choices, source="point.snapshot.state")
    business_status = serializers.CharField(source="point.snapshot.business_status")
    current_stage = serializers.CharField(source="point.snapshot.current_stage")
    variables = serializers.JSONField(source="point.snapshot.variables")
    tasks = serializers.SerializerMethodField()

    def get_url(self, obj) -> str:
        return f"/api/processes/{obj['process'].pk}/"

    def get_tasks(self, obj) -> list[dict]:
        """Every task of the process with its state then (``pending``: not reached yet)."""
        states = obj["point"].snapshot.tasks
        return [{"name": name, "state": states.get(name, "pending")} for name in obj["task_names"]]


class ProcessEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The event id (webhooks' idempotency key).")
    seq = serializers.IntegerField()
    type = serializers.CharField()
    task = serializers.CharField(source="task_name")
    actor_type = serializers.CharField()
    actor = serializers.CharField(source="actor_display")
    created_at = serializers.DateTimeField(help_text="When it was recorded.")
    occurred_at = serializers.DateTimeField(
        allow_null=True, help_text="When it happened, as the sender said (incoming events)."
    )
    data = serializers.JSONField()
    correlation_id = serializers.CharField(
        help_text="The X-Request-ID of the request (or task chain) that caused it."
    )
    caused_by = serializers.IntegerField(
        allow_null=True, help_text="The id of the event this one is a consequence of."
    )


class ProcessStartSerializer(serializers.Serializer):
    definition = serializers.SlugField(max_length=100, help_text="Definition key, e.g. `pizza`.")
    business_key = BusinessKeyField(
        help_text="The seed's business_ref_no: at most 200 characters, white space around it "
        "trimmed, no control or format characters."
    )
    input = serializers.DictField(required=False, default=dict, help_text="Initial variables.")


class ProcessBatchSerializer(serializers.Serializer):
    """A batch start; each item is checked on its own (a bad item is answered, not refused)."""

    definition = serializers.SlugField(max_length=100, help_text="Definition key, e.g. `salary`.")
    items = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=False,
        max_length=10_000,
        help_text="Up to 10,000 objects `{business_key, input}`.",
    )


class BatchItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the request.")
    business_key = serializers.CharField(allow_null=True)
    status = serializers.IntegerField(
        help_text="201 started, 200 the business key's existing instance, 400 invalid item."
    )
    process = serializers.UUIDField(allow_null=True, help_text="The instance (null if invalid).")
    state = serializers.CharField(allow_blank=True)
    archived = serializers.BooleanField(
        help_text='The existing instance was archived (`business_key_unique: "ever"`).'
    )
    archive = ArchiveLocationSerializer(allow_null=True, help_text="Where, when archived.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field of an invalid item.",
    )


class BatchSummarySerializer(serializers.Serializer):
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    invalid = serializers.IntegerField()


class BatchResultSerializer(serializers.Serializer):
    summary = BatchSummarySerializer()
    items = BatchItemSerializer(many=True)


class MigrationRequestSerializer(serializers.Serializer):
    from_version = serializers.IntegerField(
        min_value=1, max_value=2_147_483_647, help_text="The version instances run."
    )
    to_version = serializers.IntegerField(
        min_value=1, max_value=2_147_483_647, help_text="A published version."
    )
    mapping = serializers.DictField(
        child=serializers.CharField(allow_null=True, max_length=100),
        required=False,
        help_text="Source task -> target task (null: dropped); unnamed tasks keep their name.",
    )
    instances = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=1000,
        help_text="Instance ids; left out: every active instance of `from_version`.",
    )
    dry_run = serializers.BooleanField(default=False, help_text="Only the plan: nothing is moved.")


# "from" is a Python keyword: the class is built from a dict of its fields.
MappedTaskSerializer = type(
    "MappedTaskSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "A task of the old version and the task of the new version it becomes.",
        "from": serializers.CharField(help_text="The task in the old version."),
        "to": serializers.CharField(help_text="The task it becomes."),
        "state": serializers.ChoiceField(choices=TaskState.choices),
    },
)


class InstanceMigrationSerializer(serializers.Serializer):
    process = serializers.UUIDField()
    business_key = serializers.CharField()
    state = serializers.ChoiceField(choices=ProcessState.choices)
    ok = serializers.BooleanField(help_text="The plan can take this instance.")
    refusal = serializers.CharField(allow_blank=True, help_text="Why not, when it can't.")
    mapped = MappedTaskSerializer(many=True)
    dropped = serializers.ListField(child=serializers.CharField())
    added = serializers.ListField(child=serializers.CharField())
    ready = serializers.ListField(
        child=serializers.CharField(), help_text="Tasks that become ready once moved."
    )
    migrated = serializers.BooleanField()


class MigrationSummarySerializer(serializers.Serializer):
    planned = serializers.IntegerField()
    migrated = serializers.IntegerField()
    refused = serializers.IntegerField()


class MigrationResultSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    summary = MigrationSummarySerializer()
    instances = InstanceMigrationSerializer(many=True)


class ProcessCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
