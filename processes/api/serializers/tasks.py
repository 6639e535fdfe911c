"""Human tasks: rights, decisions, delegation, variable corrections."""

from __future__ import annotations

from rest_framework import serializers

from processes.api.serializers.common import OccurredAtField
from processes.api.serializers.processes import (
    ProcessSerializer,
    TaskSerializer,
)


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


class CorrectionSerializer(serializers.Serializer):
    """A correction of the process's variables the task's decider should know of."""

    by = serializers.CharField(help_text="Who corrected: a username, `name (API)` or `system`.")
    at = serializers.DateTimeField()
    reason = serializers.CharField()
    changes = serializers.DictField(
        child=serializers.JSONField(),
        help_text='Each changed path the decider may see: `{"before": v, "after": v}` '
        "(a side left out: the value was absent).",
    )


class TaskDetailPartsSerializer(serializers.Serializer):
    """What the API works out for the caller of one human task (given as a dict): the spec's
    words, ``variables`` (the task's ``show`` list), ``result`` and ``corrections`` only for
    those who may read it (null otherwise), and ``can``, the caller's rights."""

    result = serializers.JSONField(allow_null=True)
    label = serializers.CharField()
    description = serializers.CharField()
    outcomes = serializers.ListField(child=serializers.CharField())
    variables = serializers.JSONField(allow_null=True)
    corrections = CorrectionSerializer(
        many=True,
        allow_null=True,
        help_text="Variable corrections since the process's previous human decision (up to "
        "this task's own decision), oldest first, cut to the paths this task's deciders see.",
    )
    can = TaskRightsSerializer()


class TaskDetailSerializer(InboxTaskSerializer, TaskDetailPartsSerializer):
    """One human task as its caller may see it: the task's own fields, then the parts worked
    out for the caller (``TaskDetailPartsSerializer``; ``result`` as the caller may read it).
    The shape the API documents; ``task_detail`` writes it."""


def task_detail(task, parts: dict) -> dict:
    """The ``TaskDetailSerializer`` answer: ``task``'s fields joined to ``parts``."""
    return {**InboxTaskSerializer(task).data, **TaskDetailPartsSerializer(parts).data}


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
    occurred_at = OccurredAtField()


class TaskDelegateSerializer(serializers.Serializer):
    to = serializers.CharField(max_length=150, help_text="Username of a member of the task's role.")
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")


class TaskActionResultSerializer(serializers.Serializer):
    task = TaskSerializer()
    process = ProcessSerializer()
