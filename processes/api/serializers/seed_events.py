"""The seed's event protocol."""

from __future__ import annotations

from rest_framework import serializers

from processes.api.serializers.common import BusinessKeyField, OccurredAtField
from processes.api.serializers.processes import (
    ProcessSerializer,
    TaskSerializer,
)
from processes.engine import SEED_EVENTS
from processes.models import TaskType


class SeedEventSerializer(serializers.Serializer):
    """One of the seed's events; a template's ``component_name`` (or ``definition``) finds it."""

    event_name = serializers.ChoiceField(choices=SEED_EVENTS)
    business_ref_no = BusinessKeyField()
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
    occurred_at = OccurredAtField()
    worker_id = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="TaskCompleted/TaskFailed of a locked external task: the worker that locked it "
        "(another worker's answer is refused with 409 while the lock lasts).",
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


class LockSerializer(serializers.Serializer):
    """Lock tasks of a queue for one worker (fetch-and-lock)."""

    worker_id = serializers.CharField(max_length=200, help_text="Who takes the tasks.")
    max_tasks = serializers.IntegerField(
        min_value=1, max_value=100, default=1, help_text="At most this many tasks."
    )
    lock_seconds = serializers.IntegerField(
        min_value=1, max_value=86400, help_text="The tasks come back to the queue after this."
    )


class LockExtendSerializer(serializers.Serializer):
    worker_id = serializers.CharField(max_length=200, help_text="The worker holding the lock.")
    lock_seconds = serializers.IntegerField(
        min_value=1, max_value=86400, help_text="The lock lasts this long from now."
    )


class UnlockSerializer(serializers.Serializer):
    worker_id = serializers.CharField(max_length=200, help_text="The worker holding the lock.")


class LockedTaskSerializer(StartTaskSerializer):
    """A task locked for a worker: its StartTask payload and its lock."""

    locked_by = serializers.CharField()
    lock_expires_at = serializers.DateTimeField(allow_null=True)


class MessageSerializer(serializers.Serializer):
    """A message from another system, for the MESSAGE tasks waiting for it."""

    name = serializers.CharField(max_length=200, help_text="The message's name (`message.name`).")
    correlation_key = serializers.CharField(
        max_length=200, help_text="Reaches the tasks whose `message.key` variable holds it."
    )
    data = serializers.DictField(
        required=False,
        default=dict,
        help_text="Lands under the task's name, checked by its `result`.",
    )
    occurred_at = OccurredAtField()
    message_id = serializers.CharField(
        max_length=200, required=False, help_text="The sender's id: a repeat changes nothing."
    )
    buffer = serializers.CharField(
        max_length=40,
        required=False,
        help_text="Nothing waits yet: keep it this long (ISO 8601, `PT1H`) for a task that "
        "starts waiting; without it, 404.",
    )


class ReachedSerializer(serializers.Serializer):
    process_id = serializers.UUIDField()
    task_id = serializers.IntegerField(required=False)
    task_name = serializers.CharField()


class MessageResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The message as received.")
    name = serializers.CharField()
    correlation_key = serializers.CharField()
    duplicate = serializers.BooleanField(help_text="A repeat: nothing changed (200).")
    buffered = serializers.BooleanField(help_text="Nothing waited: kept until `buffer_until`.")
    buffer_until = serializers.DateTimeField(allow_null=True)
    reached = ReachedSerializer(many=True, help_text="The tasks it completed.")
    processes = ProcessSerializer(many=True, help_text="The processes it reached, as they are now.")
