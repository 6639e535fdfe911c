"""Repairs of operators: the incidents, and retry, skip, replay and reassign a task."""

from __future__ import annotations

from rest_framework import serializers

from processes.control import OPEN, RESOLVED
from processes.spec import parse_iso_duration


class DurationField(serializers.CharField):
    """An age: ISO 8601 (``PT2H``, ``P3D``) or seconds."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        value = parse_iso_duration(int(text) if text.isdigit() else text)
        if value is None or value.total_seconds() < 0:
            raise serializers.ValidationError("an ISO 8601 duration like 'PT2H' or seconds")
        return value


class IncidentQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=[OPEN, RESOLVED, "all"], required=False, default=OPEN, help_text="Default: open."
    )
    definition = serializers.CharField(max_length=100, required=False)
    older_than = DurationField(
        required=False, help_text="Opened at least this long ago (ISO 8601, e.g. `PT1H`)."
    )
    younger_than = DurationField(required=False, help_text="Opened at most this long ago.")


class IncidentSerializer(serializers.Serializer):
    """One incident: a task failed for good, when, why, and where to repair it (its age is
    counted to ``context["now"]``, so a plain Serializer)."""

    id = serializers.IntegerField(help_text="The id of its `process_failed` event.")
    state = serializers.SerializerMethodField()
    process_id = serializers.UUIDField()
    process = serializers.SerializerMethodField()
    definition = serializers.CharField(source="process.definition_key")
    business_key = serializers.CharField(source="process.business_key")
    task_id = serializers.IntegerField(allow_null=True)
    task = serializers.CharField(source="task_name")
    task_state = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    opened_at = serializers.DateTimeField(source="created_at")
    age_seconds = serializers.SerializerMethodField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    repair = serializers.SerializerMethodField()

    def get_state(self, incident) -> str:
        return RESOLVED if incident.resolved_at else OPEN

    def get_process(self, incident) -> str:
        return f"/api/processes/{incident.process_id}/"

    def get_task_state(self, incident) -> str | None:
        return incident.task.state if incident.task_id else None

    def get_error(self, incident) -> str:
        return str((incident.data or {}).get("error", ""))

    def get_age_seconds(self, incident) -> int:
        end = incident.resolved_at or self.context["now"]
        return max(0, int((end - incident.created_at).total_seconds()))

    def get_repair(self, incident) -> dict[str, str]:
        """The repair endpoints of its task (POST), while it is open."""
        if incident.resolved_at or not incident.task_id:
            return {}
        base = f"/api/tasks/{incident.task_id}/"
        return {verb: f"{base}{verb}/" for verb in ("retry", "skip", "replay")}


class RepairSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Kept in the history.",
    )


class SkipSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, help_text="Kept in the history.")
    set = serializers.DictField(
        required=False,
        default=dict,
        help_text="Values what runs next needs instead of the skipped task's results, e.g. "
        '{"bonus.amount": "409.32"}: checked against the definition\'s types (needs '
        "`correct_variables`), set in the same transaction as the skip.",
    )


class ReassignSerializer(serializers.Serializer):
    to_user = serializers.CharField(
        max_length=150, required=False, help_text="The username of the person to hold it."
    )
    to_role = serializers.CharField(
        max_length=150, required=False, help_text="Or the role (group) whose members may claim it."
    )
    reason = serializers.CharField(max_length=1000, help_text="Kept in the history.")
