"""Small input and output serializers. Input ones only validate; none of them ever ``.save()``."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject

from processes.engine import SEED_EVENTS
from processes.models import ProcessState, TaskState, TaskType


class OutputSerializer(serializers.Serializer):
    """An output serializer whose fields are built and bound once per class, not per instance.

    DRF deep-copies every declared field for every serializer it creates: a third of the CPU of
    writing a process with its tasks. Output fields here keep no per-call state and never read
    ``context``, so one bound set per class serves every call; the output is DRF's own.
    """

    @classmethod
    def _readable(cls) -> list[serializers.Field]:
        bound = cls.__dict__.get("_bound_fields")
        if bound is None:
            bound = [f for f in cls().fields.values() if not f.write_only]
            cls._bound_fields = bound
        return bound

    def to_representation(self, instance):
        data = {}
        for field in self._readable():
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            empty = (attribute.pk if isinstance(attribute, PKOnlyObject) else attribute) is None
            data[field.field_name] = None if empty else field.to_representation(attribute)
        return data


# --- errors (for the schema) ----------------------------------------------------------------------


class SpecErrorSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text="JSON path in the definition, e.g. `stages[2].tasks[0]`."
    )
    message = serializers.CharField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Machine-readable: `invalid`, `not_found`, `conflict`, ..."
    )
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field path → messages (400 only; empty otherwise).",
    )
    errors = SpecErrorSerializer(
        many=True, required=False, help_text="Definition import only: every problem with its path."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- auth -----------------------------------------------------------------------------------------


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


# --- definitions ----------------------------------------------------------------------------------


class DefinitionSerializer(serializers.Serializer):
    key = serializers.CharField()
    version = serializers.IntegerField()
    name = serializers.CharField()
    component_name = serializers.CharField(help_text="The seed template's component_name.")
    description = serializers.CharField()
    status = serializers.CharField()
    published_at = serializers.DateTimeField(allow_null=True)


class DefinitionVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)


class DefinitionDetailSerializer(DefinitionSerializer):
    spec = serializers.JSONField()
    versions = DefinitionVersionSerializer(many=True)
    retention = serializers.SerializerMethodField(
        help_text="How long closed processes are kept before `archive_processes` archives and "
        "deletes them (ISO 8601, e.g. `P7Y`); null: kept for ever."
    )

    def get_retention(self, definition) -> str | None:
        kept = definition.parsed().retention
        return kept.text if kept is not None else None


class DefinitionImportedSerializer(serializers.Serializer):
    key = serializers.CharField()
    version = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when the newest version was identical.")


# --- processes and tasks --------------------------------------------------------------------------


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


class ProcessDetailSerializer(ProcessSerializer):
    started_by = serializers.CharField()
    parent = serializers.UUIDField(
        source="parent_id", allow_null=True, help_text="The process that started this one."
    )
    parent_task = serializers.SerializerMethodField(
        help_text="The parent's PROCESS task waiting for this one; its children: "
        "`GET /api/processes/?parent={id}`."
    )
    variables = serializers.JSONField()
    tasks = TaskSerializer(many=True, source="tasks.all")

    def get_parent_task(self, process) -> str | None:
        if process.parent_task_id is None:
            return None
        return process.parent_task.name


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
    created_at = serializers.DateTimeField()
    data = serializers.JSONField()
    correlation_id = serializers.CharField(
        help_text="The X-Request-ID of the request (or task chain) that caused it."
    )
    caused_by = serializers.IntegerField(
        allow_null=True, help_text="The id of the event this one is a consequence of."
    )


class ProcessStartSerializer(serializers.Serializer):
    definition = serializers.SlugField(max_length=100, help_text="Definition key, e.g. `pizza`.")
    business_key = serializers.CharField(max_length=200, help_text="The seed's business_ref_no.")
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


# --- the seed's event protocol --------------------------------------------------------------------


class SeedEventSerializer(serializers.Serializer):
    """One of the seed's events; a template's ``component_name`` (or ``definition``) finds it."""

    event_name = serializers.ChoiceField(choices=SEED_EVENTS)
    business_ref_no = serializers.CharField(max_length=200)
    component_name = serializers.CharField(max_length=200, required=False)
    definition = serializers.SlugField(
        max_length=100, required=False, help_text="Definition key, instead of component_name."
    )
    stage_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    task_name = serializers.CharField(max_length=100, required=False)
    task_type = serializers.ChoiceField(choices=TaskType.choices, required=False)
    data = serializers.DictField(
        required=False,
        help_text="The task's result, stored under the task's name in the variables (never "
        "over other variables). For a human task marked `external_decision`: its `decision`, "
        "`comment` and form fields.",
    )
    error = serializers.CharField(
        max_length=4000, required=False, allow_blank=True, help_text="TaskFailed: what went wrong."
    )

    def validate(self, attrs):
        if not attrs.get("component_name") and not attrs.get("definition"):
            raise serializers.ValidationError(
                {"component_name": ["component_name or definition is required"]}
            )
        if attrs["event_name"] != "StartWorkflow" and not attrs.get("task_name"):
            raise serializers.ValidationError(
                {"task_name": [f"required for {attrs['event_name']}"]}
            )
        return attrs


class SeedEventResultSerializer(serializers.Serializer):
    event_name = serializers.CharField()
    duplicate = serializers.BooleanField(
        help_text="True when the event changed nothing (already applied); it is still recorded."
    )
    process = ProcessSerializer()
    task = TaskSerializer(allow_null=True)
    scheduled = serializers.ListField(
        child=serializers.CharField(), help_text="Names of the tasks scheduled now."
    )


class StartTaskSerializer(serializers.Serializer):
    """The seed's StartTask payload (plus the task's extra template fields, as the seed does)."""

    business_ref_no = serializers.CharField()
    component_name = serializers.CharField()
    event_name = serializers.CharField()
    stage_name = serializers.CharField()
    task_name = serializers.CharField()
    task_type = serializers.CharField()
    task_queue = serializers.CharField()
    task_id = serializers.IntegerField()
    process_id = serializers.UUIDField()
    scheduled_at = serializers.DateTimeField(allow_null=True)


# --- human tasks ----------------------------------------------------------------------------------


class InboxTaskSerializer(TaskSerializer):
    process_id = serializers.UUIDField()
    definition = serializers.CharField(source="process.definition_key")
    business_key = serializers.CharField(source="process.business_key")
    business_status = serializers.CharField(source="process.business_status")
    overdue = serializers.SerializerMethodField()

    def get_overdue(self, task) -> bool:
        return task.is_overdue


class TaskRightsSerializer(serializers.Serializer):
    claim = serializers.BooleanField()
    decide = serializers.BooleanField()
    delegate = serializers.BooleanField()
    release = serializers.BooleanField()
    refusal = serializers.CharField(help_text="Why the caller may not decide it, in plain words.")


class TaskDetailSerializer(InboxTaskSerializer):
    """One human task as its caller may see it: ``variables`` (the task's ``show`` list) and
    ``result`` only for those who may read it (null otherwise)."""

    label = serializers.CharField()
    description = serializers.CharField()
    outcomes = serializers.ListField(child=serializers.CharField())
    variables = serializers.JSONField(allow_null=True)
    can = TaskRightsSerializer()


class VariablesCorrectionSerializer(serializers.Serializer):
    set = serializers.DictField(
        required=False,
        default=dict,
        help_text='Variable paths to new values, e.g. {"bonus.amount": 410}.',
    )
    unset = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list
    )
    reason = serializers.CharField(max_length=1000, help_text="Kept in the history.")


class TaskCompleteSerializer(serializers.Serializer):
    decision = serializers.CharField(
        max_length=100, required=False, allow_null=True, allow_blank=True, default=None
    )
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
    data = serializers.DictField(required=False, default=dict, help_text="The task's form fields.")


class TaskDelegateSerializer(serializers.Serializer):
    to = serializers.CharField(max_length=150, help_text="Username of a member of the task's role.")
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")


class TaskActionResultSerializer(serializers.Serializer):
    task = TaskSerializer()
    process = ProcessSerializer()
