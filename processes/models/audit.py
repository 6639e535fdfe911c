"""The append-only event log of every instance."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from processes.models.instances import (
    ProcessInstance,
)
from processes.models.states import (
    AppendOnlyModel,
)
from processes.models.tasks import (
    TaskInstance,
)


class EventType(models.TextChoices):
    PROCESS_STARTED = "process_started", "Process started"
    PROCESS_COMPLETED = "process_completed", "Process completed"
    PROCESS_FAILED = "process_failed", "Incident opened"
    PROCESS_RESUMED = "process_resumed", "Incident resolved"
    PROCESS_CANCELLED = "process_cancelled", "Process cancelled"
    PROCESS_REOPENED = "process_reopened", "Process reopened"
    PROCESS_SENT_BACK = "process_sent_back", "Sent back for rework"
    PROCESS_MIGRATED = "process_migrated", "Moved to another version"
    SUBPROCESS_STARTED = "subprocess_started", "Child process started"
    SUBPROCESS_FINISHED = "subprocess_finished", "Child process finished"
    STAGE_STARTED = "stage_started", "Stage started"
    STAGE_COMPLETED = "stage_completed", "Stage completed"
    VARIABLES_UPDATED = "variables_updated", "Variables updated"
    VARIABLES_CHANGED = "variables_changed", "Variables corrected"
    TASK_SCHEDULED = "task_scheduled", "Task scheduled"
    TASK_STARTED = "task_started", "Task started"
    TASK_COMPLETED = "task_completed", "Task completed"
    TASK_ATTEMPT_FAILED = "task_attempt_failed", "Task attempt failed (will retry)"
    TASK_FAILED = "task_failed", "Task failed"
    TASK_RETRIED = "task_retried", "Task retried"
    TASK_REQUEUED = "task_requeued", "Task lease expired, requeued"
    TASK_SKIPPED = "task_skipped", "Task skipped"
    TASK_CANCELLED = "task_cancelled", "Task cancelled"
    TASK_RESET = "task_reset", "Task reset for replay"
    TASK_DUPLICATE = "task_duplicate", "Duplicate event ignored"
    TASK_CLAIMED = "task_claimed", "Task claimed"
    TASK_RELEASED = "task_released", "Task released"
    TASK_DELEGATED = "task_delegated", "Task delegated"
    TASK_ESCALATED = "task_escalated", "Task escalated"
    TASK_REASSIGNED = "task_reassigned", "Task reassigned"
    TASK_REMINDED = "task_reminded", "Reminder sent"
    TASK_SUBSTITUTED = "task_substituted", "Task passed on (absence)"
    COMPENSATION_RUN = "compensation_run", "Compensation run"
    PROCESS_CANCELLING = "process_cancelling", "Process cancelling (compensating)"
    PROCESS_COMPENSATED = "process_compensated", "Process compensated after a failure"
    PROCESS_DEADLINE_PASSED = "process_deadline_passed", "Process deadline passed"
    TASK_TIMED_OUT = "task_timed_out", "Task deadline passed"
    COMPENSATION_SCHEDULED = "compensation_scheduled", "Compensation scheduled"
    COMPENSATION_STARTED = "compensation_started", "Compensation started"
    COMPENSATION_COMPLETED = "compensation_completed", "Compensation completed"
    COMPENSATION_ATTEMPT_FAILED = (
        "compensation_attempt_failed",
        "Compensation attempt failed (will retry)",
    )
    COMPENSATION_FAILED = "compensation_failed", "Compensation failed"
    COMPENSATION_REQUEUED = "compensation_requeued", "Compensation lease expired, requeued"
    COMPENSATION_RETRIED = "compensation_retried", "Compensation retried"
    COMPENSATION_SKIPPED = "compensation_skipped", "Compensation skipped"
    NOTIFICATION_SENT = "notification_sent", "Notification sent"
    NOTIFICATION_FAILED = "notification_failed", "Notification failed"
    MESSAGE_RECEIVED = "message_received", "Message received"
    ATTACHMENT_ADDED = "attachment_added", "File attached"


class ActorType(models.TextChoices):
    USER = "user", "User"
    API = "api", "API client"
    SYSTEM = "system", "System"
    WORKER = "worker", "Worker"


class ProcessEvent(AppendOnlyModel):
    """One row per thing that happened to a process: never updated, never deleted."""

    # (its lookups use event_process_seq_unique, whose first column it is: no index of its own)
    process = models.ForeignKey(
        ProcessInstance, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40, choices=EventType.choices)
    task = models.ForeignKey(  # (event_task_seq leads with it)
        TaskInstance,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
    )
    task_name = models.CharField(max_length=100, blank=True, default="")
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(  # (event_actor_user: only the rows a person caused)
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    actor_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    occurred_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When it happened, as the sender said (recorded: created_at).",
    )
    data = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",  # rows written by fixed SQL that don't name it
        help_text="The X-Request-ID of the request (or the task chain) that caused it.",
    )
    caused_by = models.BigIntegerField(
        null=True, blank=True, help_text="The id of the event this one is a consequence of."
    )
    hash = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",  # events written before the chain: none
        help_text="SHA-256 over the previous event's hash and this one's content "
        "(processes.events.chain).",
    )

    append_only_what = "process events"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["process", "seq"], name="event_process_seq_unique")
        ]
        indexes = [
            models.Index(fields=["type", "created_at"], name="event_type_created"),
            models.Index(fields=["task", "seq"], name="event_task_seq"),
            models.Index(fields=["correlation_id"], name="event_correlation"),
            # Most events are a worker's or the system's: an index of the others only.
            models.Index(
                fields=["actor_user"],
                name="event_actor_user",
                condition=Q(actor_user__isnull=False),
            ),
        ]
        ordering = ["process_id", "seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"

    @property
    def actor_display(self) -> str:
        return self.actor_label or self.actor_type
